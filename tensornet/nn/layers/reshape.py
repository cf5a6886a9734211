"""Reshape: each example to ``target_shape`` (one entry may be -1), a view, no copy."""
from __future__ import annotations

import math

from .base import Layer


class Reshape(Layer):
    """(batch, *input_shape) -> (batch, *target_shape), in row-major order as NumPy and Keras
    reshape; backward reshapes the gradient back.

    >>> layer = Reshape((28, 28, 1), input_shape=(784,))
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if isinstance(target_shape, int) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        try:
            target = tuple(target_shape)
        except TypeError:
            target = None
        if (not target or any(isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1) for d in target)
                or target.count(-1) > 1):
            raise ValueError("Reshape target_shape must be a tuple of positive ints with at most one -1; "
                             f"got {target_shape!r}")
        self.target_shape = target

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"Reshape layer {self.name!r} cannot reshape per-example shape {tuple(input_shape)} "
                                 f"({size} values) to {self.target_shape}: {size} is not a multiple of {known}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(f"Reshape layer {self.name!r} cannot reshape per-example shape {tuple(input_shape)} "
                             f"({size} values) to {self.target_shape} ({known} values)")
        return self.target_shape

    def forward(self, x, training=False):
        return x.reshape((x.shape[0], *self.output_shape))

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        return dy.reshape((dy.shape[0], *self.input_shape))

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}
