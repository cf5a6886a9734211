"""Metrics accumulated on the device: each batch adds a 0-d sum, read once per epoch.

``accuracy`` resolves, as in Keras, to the variant the loss and output call for:
categorical (argmax of prediction equals argmax of the one-hot target), sparse (argmax equals
the integer label) or binary (prediction > 0.5 equals the 0/1 target, element-wise; the
threshold is 0 when the loss takes logits). A loss name (``"mse"``, ...) as a metric reports
that loss.
"""
from __future__ import annotations

from . import losses as losses_module


class Metric:
    """``batch_sum(ops, pred, target)`` is added up over an epoch and divided by
    ``denominator(samples, output_size)``."""

    name = "metric"

    def batch_sum(self, ops, pred, target):
        raise NotImplementedError

    def denominator(self, samples: int, output_size: int) -> int:
        return samples

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


class Accuracy(Metric):
    """Fraction of correct predictions; ``kind`` is categorical, sparse, binary or binary_logits."""

    KINDS = ("categorical", "sparse", "binary", "binary_logits")

    def __init__(self, kind: str, name: str = "accuracy"):
        if kind not in self.KINDS:
            raise ValueError(f"accuracy kind must be one of {', '.join(self.KINDS)}; got {kind!r}")
        self.kind, self.name = kind, name

    def batch_sum(self, ops, pred, target):
        return ops.count_correct(pred, target, self.kind)

    def denominator(self, samples, output_size):
        return samples * output_size if self.kind.startswith("binary") else samples


class LossMetric(Metric):
    """A loss reported as a metric (its batch mean)."""

    def __init__(self, loss, name: str):
        self.loss, self.name = loss, name

    def batch_sum(self, ops, pred, target):
        return self.loss.total(ops, pred, target)


_ACCURACY_KINDS = {"categorical_accuracy": "categorical", "sparse_categorical_accuracy": "sparse",
                   "binary_accuracy": "binary"}


def accuracy_kind(loss, output_size: int) -> str:
    """The accuracy variant Keras picks for ``loss`` and an output of ``output_size`` units."""
    if loss.target_kind == "sparse":
        return "sparse"
    if output_size == 1 or isinstance(loss, losses_module.BinaryCrossentropy):
        return "binary_logits" if loss.from_logits else "binary"
    return "categorical"


def get(identifier, loss, output_size: int) -> Metric:
    """The metric ``identifier`` names, specialised for ``loss`` and the output size."""
    if isinstance(identifier, Metric):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"metrics entries must be names (str) or Metric instances; got {identifier!r}")
    key = identifier.lower()
    if key in ("accuracy", "acc"):
        return Accuracy(accuracy_kind(loss, output_size), name=identifier)
    if key in _ACCURACY_KINDS:
        kind = _ACCURACY_KINDS[key]
        if kind == "binary" and loss.from_logits:
            kind = "binary_logits"
        return Accuracy(kind, name=identifier)
    try:
        return LossMetric(losses_module.get(key, "metrics"), name=identifier)
    except ValueError:
        names = sorted(["accuracy", "acc", *_ACCURACY_KINDS, *losses_module.NAMES])
        raise ValueError(f"unknown metric {identifier!r} in metrics; expected one of: {', '.join(names)}") from None
