"""The layered training step: what :meth:`Backend.training_step` returns on every backend, and
what a backend's faster whole-step kernel falls back to.

One step on a batch (x, y), for a model with flat parameters w and gradients g:

1. forward: ``p = model.forward(x, training=True)``, each layer ``h_l = f_l(h_{l-1})``;
2. backward: ``model.backpropagate(p, y)`` writes dL/dp (dL/dz = (p - y) / N straight from the
   logits for softmax with categorical cross-entropy), then each layer's gradients into g, last
   layer first, and returns the loss summed over the batch;
3. update: one optimizer call over the flat buffers, ``w, state = rule(w, g, state, lr_t)``.

The step reads only the model's public protocol (``forward``, ``backpropagate``, ``optimizer``,
``store``): a backend never names a layer class.
"""
from __future__ import annotations


class LayeredStep:
    """The step ``fit`` runs layer by layer; ``path`` is ``"layered"`` and ``reason`` says why no
    whole-step kernel serves the model (None when none was asked for)."""

    path = "layered"

    def __init__(self, model, reason=None):
        self.model, self.reason = model, reason

    def __call__(self, x, y, update=True):
        """Train on one batch: ``(predictions, loss sum)``, both on the device. With ``update``
        False the gradients are made and no weight, optimizer state or step count changes (the
        divergence guard checks them before it applies the update itself)."""
        model = self.model
        pred = model.forward(x, training=True)
        loss_sum = model.backpropagate(pred, y)
        if update:
            model.optimizer.apply(model.store)
        return pred, loss_sum
