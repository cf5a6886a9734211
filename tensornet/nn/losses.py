"""Losses: the batch-mean of a per-example loss, its value and its gradient.

Per-example losses (mean over the last axis where Keras takes it), with eps = 1e-7:

- ``mean_squared_error``   mean_j (t_j - p_j)^2
- ``mean_absolute_error``  mean_j |t_j - p_j|
- ``binary_crossentropy``  mean_j -(t log p + (1 - t) log(1 - p)), p clipped to [eps, 1 - eps];
  ``from_logits=True``: mean_j max(x, 0) - x t + log(1 + e^-|x|)
- ``categorical_crossentropy``  -sum_j t_j log p_j, p clipped; ``from_logits=True``:
  -sum_j t_j log_softmax(x)_j (log-sum-exp)
- ``sparse_categorical_crossentropy``  the same with an integer label instead of one-hot t

When the output layer's activation is softmax (sigmoid) and the loss is categorical (binary)
cross-entropy on probabilities, training uses the fused form: the loss from the logits in the
stable form and the gradient with respect to the logits, (p - t) / N, computed directly --
never differentiated through the clipped log.
"""
from __future__ import annotations

from ..backend.registry import resolve
from ..backend import get_backend


class Loss:
    """Base class: ``total`` is the batch sum, ``gradient`` the gradient of the batch mean."""

    name = "loss"
    #: ``"dense"`` targets have the output's shape; ``"sparse"`` targets are integer labels.
    target_kind = "dense"
    #: the backend method computing the batch sum (``<method>_grad`` gives the gradient).
    method = ""
    #: the output activation this loss fuses with (``None``: no fused form).
    fuses_with = None

    def __init__(self, from_logits: bool = False):
        if not isinstance(from_logits, bool):
            raise TypeError(f"from_logits must be True or False; got {from_logits!r}")
        self.from_logits = from_logits

    def _method(self):
        return self.method + ("_from_logits" if self.from_logits else "")

    def total(self, ops, pred, target):
        """Sum over the batch of the per-example losses (a 0-d array on the device)."""
        return getattr(ops, self._method())(pred, target)

    def gradient(self, ops, pred, target, out=None):
        """d(mean loss) / d(pred)."""
        return getattr(ops, self._method() + "_grad")(pred, target, out=out)

    def fused_activation(self, activation_name):
        """The output activation this loss fuses with when the output layer applies it."""
        if not self.from_logits and activation_name == self.fuses_with:
            return activation_name
        return None

    def fused(self, ops, logits, probs, target, grad_out):
        """Loss sum from the logits; gradient with respect to the logits into ``grad_out``."""
        raise NotImplementedError(f"{self.name} has no fused form")

    def fused_total(self, ops, logits, target):
        """The loss sum of the fused form, from the logits (evaluation: no gradient)."""
        return getattr(ops, self.method + "_from_logits")(logits, target)

    def __call__(self, y_true, y_pred) -> float:
        """The batch-mean loss, Keras' argument order (``y_true`` first)."""
        ops = get_backend()
        pred = ops.asarray(y_pred)
        if self.target_kind == "sparse":  # integer labels (Keras also takes them as floats)
            target = ops.asarray(y_true, dtype="int64").reshape(-1)
        else:
            target = ops.asarray(y_true, dtype=pred.dtype)
        if self.target_kind == "dense" and target.shape != pred.shape:
            target = target.reshape(pred.shape)
        # ``total`` sums over every axis but the last (a 1-D y_pred is one example, as in Keras).
        examples = max(pred.size // pred.shape[-1], 1) if pred.ndim else 1
        return ops.to_float(self.total(ops, pred, target)) / examples

    def get_config(self) -> dict:
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class MeanSquaredError(Loss):
    """mean_j (t_j - p_j)^2 per example; gradient 2 (p - t) / (N F)."""

    name = "mean_squared_error"
    method = "mse"

    def __init__(self):
        super().__init__(False)


class MeanAbsoluteError(Loss):
    """mean_j |t_j - p_j| per example; gradient sign(p - t) / (N F)."""

    name = "mean_absolute_error"
    method = "mae"

    def __init__(self):
        super().__init__(False)


class BinaryCrossentropy(Loss):
    """mean_j -(t log p + (1 - t) log(1 - p)) per example; fuses with a sigmoid output."""

    name = "binary_crossentropy"
    method = "binary_crossentropy"
    fuses_with = "sigmoid"

    def fused(self, ops, logits, probs, target, grad_out):
        return ops.sigmoid_binary_crossentropy(logits, probs, target, grad_out)


class CategoricalCrossentropy(Loss):
    """-sum_j t_j log p_j per example; fuses with a softmax output (gradient (p - t) / N)."""

    name = "categorical_crossentropy"
    method = "categorical_crossentropy"
    fuses_with = "softmax"

    def fused(self, ops, logits, probs, target, grad_out):
        return ops.softmax_cross_entropy(logits, probs, target, grad_out, sparse=False)

    def fused_count(self, ops, logits, probs, target, grad_out):
        """:meth:`fused` that also counts the correct predictions in the same pass:
        ``(loss sum, correct)``."""
        return ops.softmax_cross_entropy_count(logits, probs, target, grad_out,
                                               sparse=self.target_kind == "sparse")


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """-log p_label per example for integer labels; fuses with a softmax output."""

    name = "sparse_categorical_crossentropy"
    method = "sparse_categorical_crossentropy"
    target_kind = "sparse"

    def fused(self, ops, logits, probs, target, grad_out):
        return ops.softmax_cross_entropy(logits, probs, target, grad_out, sparse=True)


_CLASSES = (MeanSquaredError, MeanAbsoluteError, BinaryCrossentropy, CategoricalCrossentropy,
            SparseCategoricalCrossentropy)
_REGISTRY = {cls.name: cls for cls in _CLASSES}
_REGISTRY.update({"mse": MeanSquaredError, "mae": MeanAbsoluteError,
                  "bce": BinaryCrossentropy, "cce": CategoricalCrossentropy})

#: Names ``get`` accepts.
NAMES = tuple(sorted(_REGISTRY))

# Keras-style module-level names.
mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()
binary_crossentropy = BinaryCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
sparse_categorical_crossentropy = SparseCategoricalCrossentropy()


def get(identifier, argument: str = "loss") -> Loss:
    """The loss ``identifier`` names (a string, a Loss instance or a Loss class)."""
    return resolve(identifier, _REGISTRY, Loss, "loss", argument)


def from_config(config: dict) -> Loss:
    cls = _REGISTRY[config["name"]]
    return cls(config["from_logits"]) if cls.__init__ is Loss.__init__ else cls()
