"""Activation layer: y = f(x) for a named activation function."""
from __future__ import annotations

from .. import activations
from .base import Layer


class Activation(Layer):
    """Applies an activation (``"relu"``, ``"softmax"``, ...) to its input.

    >>> layer = Activation("tanh")
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self._x = self._y = None

    @property
    def output_activation(self):
        return self.activation.name

    @property
    def logits(self):
        return self._x

    def forward(self, x, training=False):
        self._x = x
        self._y = self.activation.forward(self.ops, x, out=self.workspace("y", x.shape))
        return self._y

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        if not through_activation:
            return dy
        return self.activation.backward(self.ops, dy, self._y, out=self.workspace("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.get_config()}
