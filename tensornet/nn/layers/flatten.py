"""Flatten: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...), a view, no copy."""
from __future__ import annotations

import math

from .base import Layer


class Flatten(Layer):
    """Reshapes each example to a vector so that 28x28 images go straight into a Dense layer.

    >>> layer = Flatten(input_shape=(28, 28))
    """

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1)

    def describe_step(self, store) -> dict:
        """``op`` ``"flatten"``: rows are reshaped, nothing computed."""
        return {**super().describe_step(store), "op": "flatten"}

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        return dy.reshape((dy.shape[0],) + self.input_shape)
