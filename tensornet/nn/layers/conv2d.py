"""Conv2D: y = f(conv(x, kernel) + bias), channels last, kernel of shape (kh, kw, in, out)."""
from __future__ import annotations

from ...backend.conv_ops import conv_geometry
from .. import activations, initializers
from .base import Layer
from .bias_activation import BiasActivation
from .window_arguments import check_data_format, check_image_shape, check_windows, int_pair, padding_mode


class Conv2D(BiasActivation, Layer):
    """2-D convolution over (batch, height, width, channels) images, as Keras' ``Conv2D``:

    z[b, i, j, o] = sum_{u, v, c} p[b, i s_h + u d_h, j s_w + v d_w, c] kernel[u, v, c, o] + bias[o],
    y = activation(z), with p the input zero-padded for ``padding="same"`` (TensorFlow's rule:
    output ceil(size / stride), the odd padding pixel at the bottom / right) and no padding for
    ``"valid"`` (output floor((size - d (k - 1) - 1) / s) + 1).

    The backend computes it as im2col and one matrix product; backward: dz = dy * f'(z),
    dkernel = cols^T dz, dbias = sum dz, dx = col2im(dz kernel^T) (:mod:`tensornet.backend.conv_ops`).

    >>> layer = Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1))
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"Conv2D filters must be a positive int; got {filters!r}")
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias must be True or False; got {use_bias!r}")
        self.filters = filters
        self.kernel_size = int_pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = int_pair(strides, "strides", "Conv2D")
        self.padding = padding_mode(padding, "Conv2D")
        self.data_format = check_data_format(data_format, "Conv2D")
        self.dilation_rate = int_pair(dilation_rate, "dilation_rate", "Conv2D")
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self._geometry = None
        self._cols = self._z = self._y = None

    def _windows(self, input_shape):
        return conv_geometry(input_shape, self.kernel_size, self.strides, self.dilation_rate, self.padding)

    def compute_output_shape(self, input_shape):
        input_shape = check_image_shape(input_shape, self)
        geometry = self._windows(input_shape)
        check_windows(self, input_shape, geometry, "kernel")
        return (geometry[0][5], geometry[1][5], self.filters)

    def build_weights(self, input_shape):
        self._geometry = self._windows(input_shape)
        self.add_weight("kernel", (*self.kernel_size, input_shape[2], self.filters), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)

    def forward(self, x, training=False):
        ops, n = self.ops, x.shape[0]
        rows, cols = self._geometry
        (kh, kw), c = self.kernel_size, self.input_shape[2]
        out_shape = (n, *self.output_shape)
        patches = self.workspace("cols", (n * rows[5] * cols[5], kh * kw * c))
        z, patches = ops.conv2d(x, self.weights["kernel"], None, rows, cols, out=self.workspace("z", out_shape),
                                cols_out=patches)
        y = self._bias_activation(z.reshape(-1, self.filters))
        self._cols, self._z, self._y = patches, z, y.reshape(out_shape)
        return self._y

    def backward(self, dy, through_activation=True):
        ops = self.ops
        dz = self._activation_backward(dy, through_activation)
        rows, cols = self._geometry
        x_shape = (dy.shape[0], *self.input_shape)
        dx, _, _ = ops.conv2d_backward(dz, self._cols, x_shape, self.weights["kernel"], rows, cols,
                                       dx_out=self.workspace("dx", x_shape) if self.needs_input_grad else None,
                                       dkernel_out=self.gradients["kernel"], dbias_out=self.gradients.get("bias"),
                                       need_dx=self.needs_input_grad)
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "activation": self.activation.get_config(),
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer.get_config(),
                "bias_initializer": self.bias_initializer.get_config()}
