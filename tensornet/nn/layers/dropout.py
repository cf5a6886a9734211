"""Dropout (inverted): in training y = x * m / (1 - rate), m_i ~ Bernoulli(1 - rate); identity otherwise."""
from __future__ import annotations

from .base import Layer


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of its inputs during training and scales the rest by
    1 / (1 - rate), so inference needs no rescaling. Masks come from the model's seeded
    generator (``seed`` gives the layer its own).

    >>> layer = Dropout(0.2)
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be a number in [0, 1); got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = None
        self._mask = None

    def build_weights(self, input_shape):
        if self.seed is not None:
            self.rng = self.ops.rng(self.seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        if self.rng is None:
            self.rng = self.ops.rng(None)
        y, self._mask = self.ops.dropout_forward(x, self.rng, self.rate, mask_out=self.workspace("mask", x.shape),
                                                 out=self.workspace("y", x.shape))
        return y

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        if self._mask is None:
            return dy
        return self.ops.multiply(dy, self._mask, out=self.workspace("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
