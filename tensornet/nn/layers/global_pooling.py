"""GlobalAveragePooling2D and GlobalMaxPooling2D: one value per channel of each image."""
from __future__ import annotations

from .base import Layer
from .window_arguments import check_data_format, check_image_shape


class _GlobalPooling2D(Layer):
    """A pool over the whole (height, width) plane: (batch, h, w, c) -> (batch, c), or
    (batch, 1, 1, c) with ``keepdims=True``. The backend runs it as a pool of size (h, w)."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, type(self).__name__)
        if not isinstance(keepdims, bool):
            raise TypeError(f"keepdims must be True or False; got {keepdims!r}")
        self.keepdims = keepdims
        self._geometry = None

    def compute_output_shape(self, input_shape):
        h, w, c = check_image_shape(input_shape, self)
        return (1, 1, c) if self.keepdims else (c,)

    def build_weights(self, input_shape):
        h, w, _ = input_shape
        self._geometry = ((h, h, 1, 0, 0, 1), (w, w, 1, 0, 0, 1))

    def _pooled_shape(self, n):
        return (n, 1, 1, self.input_shape[2])

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """y[b, c] = mean over (i, j) of x[b, i, j, c]; dx = dy / (h w) at every pixel.

    >>> layer = GlobalAveragePooling2D()
    """

    def forward(self, x, training=False):
        rows, cols = self._geometry
        y = self.ops.avg_pool2d(x, rows, cols, out=self.workspace("y", self._pooled_shape(x.shape[0])))
        return y if self.keepdims else y.reshape(x.shape[0], -1)

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        rows, cols = self._geometry
        n = dy.shape[0]
        x_shape = (n, *self.input_shape)
        return self.ops.avg_pool2d_backward(dy.reshape(self._pooled_shape(n)), x_shape, rows, cols,
                                            out=self.workspace("dx", x_shape))


class GlobalMaxPooling2D(_GlobalPooling2D):
    """y[b, c] = max over (i, j) of x[b, i, j, c]; dx routes dy to the first maximum.

    >>> layer = GlobalMaxPooling2D()
    """

    def forward(self, x, training=False):
        rows, cols = self._geometry
        y, self._argmax = self.ops.max_pool2d(x, rows, cols, out=self.workspace("y", self._pooled_shape(x.shape[0])))
        return y if self.keepdims else y.reshape(x.shape[0], -1)

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        rows, cols = self._geometry
        n = dy.shape[0]
        x_shape = (n, *self.input_shape)
        return self.ops.max_pool2d_backward(dy.reshape(self._pooled_shape(n)), self._argmax, x_shape, rows, cols,
                                            out=self.workspace("dx", x_shape))
