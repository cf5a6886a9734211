"""Dense: y = f(x W + b), W of shape (in, out)."""
from __future__ import annotations

from .. import activations, initializers
from .base import Layer
from .bias_activation import BiasActivation


class Dense(BiasActivation, Layer):
    """Fully connected layer ``y = activation(x @ kernel + bias)``.

    Backward, with dz = dy * f'(z): dkernel = x^T dz, dbias = sum_rows(dz), dx = dz kernel^T.

    >>> layer = Dense(3, activation="relu", input_shape=(4,))
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"Dense units must be a positive int; got {units!r}")
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias must be True or False; got {use_bias!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self._x = self._z = self._y = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense layer {self.name!r} expects inputs of shape (batch, features); "
                             f"got per-example shape {input_shape} (add a Flatten layer first)")
        return (self.units,)

    def build_weights(self, input_shape):
        self.add_weight("kernel", (input_shape[0], self.units), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer)

    def forward(self, x, training=False):
        ops, n = self.ops, x.shape[0]
        z = ops.matmul(x, self.weights["kernel"], out=self.workspace("z", (n, self.units)))
        y = self._bias_activation(z)
        self._x, self._z, self._y = x, z, y
        return y

    def backward(self, dy, through_activation=True):
        ops = self.ops
        dz = self._activation_backward(dy, through_activation)
        if self.use_bias:
            ops.sum_rows(dz, out=self.gradients["bias"])
        if not self.needs_input_grad:
            ops.matmul(self._x, dz, trans_a=True, out=self.gradients["kernel"])
            return None
        dx = self.workspace("dx", self._x.shape)
        ops.matmuls(((self._x, dz, self.gradients["kernel"], True, False),  # independent products:
                     (dz, self.weights["kernel"], dx, False, True)))          # a backend may run both at once
        return dx

    def describe_step(self, store) -> dict:
        """``op`` ``"dense"``: ``y = f(x W + b)`` with ``kernel`` and ``bias`` the offsets of W
        (``inputs`` x ``units``, row-major) and b in the flat parameter buffer (bias -1: none),
        ``activation`` f's name and ``kernel_bytes`` W's size."""
        kernel = self.weights["kernel"]
        bias = store.offset(self, "bias")
        return {**super().describe_step(store), "op": "dense", "kernel": store.offset(self, "kernel"),
                "bias": -1 if bias is None else bias, "inputs": kernel.shape[0], "units": self.units,
                "activation": self.activation.name, "kernel_bytes": kernel.size * kernel.dtype.itemsize}

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation.get_config(),
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer.get_config(),
                "bias_initializer": self.bias_initializer.get_config()}
