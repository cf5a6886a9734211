"""MaxPooling2D and AveragePooling2D over (batch, height, width, channels) images."""
from __future__ import annotations

from ...backend.conv_ops import conv_geometry
from .base import Layer
from .window_arguments import check_data_format, check_image_shape, check_windows, int_pair, padding_mode


class _Pooling2D(Layer):
    """A pool of ``pool_size`` moved by ``strides`` (default: ``pool_size``) over each channel,
    with Keras' ``padding`` ("valid": windows inside the image; "same": output
    ceil(size / stride), padded as TensorFlow pads, the padding never counted)."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        self.pool_size = int_pair(pool_size, "pool_size", kind)
        self.strides = self.pool_size if strides is None else int_pair(strides, "strides", kind)
        self.padding = padding_mode(padding, kind)
        self.data_format = check_data_format(data_format, kind)
        self._geometry = None

    def _windows(self, input_shape):
        return conv_geometry(input_shape, self.pool_size, self.strides, (1, 1), self.padding)

    def compute_output_shape(self, input_shape):
        input_shape = check_image_shape(input_shape, self)
        geometry = self._windows(input_shape)
        check_windows(self, input_shape, geometry, "pool")
        return (geometry[0][5], geometry[1][5], input_shape[2])

    def build_weights(self, input_shape):
        self._geometry = self._windows(input_shape)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(_Pooling2D):
    """y[b, i, j, c] = max over the pool window of x; backward routes dy to the window's first
    maximum (row-major order within the window), so tied maxima get the gradient once.

    >>> layer = MaxPooling2D(pool_size=(2, 2))
    """

    def forward(self, x, training=False):
        rows, cols = self._geometry
        shape = (x.shape[0], *self.output_shape)
        y, argmax = self.ops.max_pool2d(x, rows, cols, out=self.workspace("y", shape))
        self._argmax = argmax
        return y

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        rows, cols = self._geometry
        x_shape = (dy.shape[0], *self.input_shape)
        return self.ops.max_pool2d_backward(dy, self._argmax, x_shape, rows, cols, out=self.workspace("dx", x_shape))


class AveragePooling2D(_Pooling2D):
    """y[b, i, j, c] = mean of x over the window's entries inside the image; backward spreads
    dy / count evenly over them.

    >>> layer = AveragePooling2D(pool_size=2)
    """

    def forward(self, x, training=False):
        rows, cols = self._geometry
        return self.ops.avg_pool2d(x, rows, cols, out=self.workspace("y", (x.shape[0], *self.output_shape)))

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        rows, cols = self._geometry
        x_shape = (dy.shape[0], *self.input_shape)
        return self.ops.avg_pool2d_backward(dy, x_shape, rows, cols, out=self.workspace("dx", x_shape))
