"""The NumPy backend's convolution and pooling: :mod:`._numba_conv`'s one-pass kernels for
im2col, col2im and max pooling where Numba is in use and the arrays suit them (C-contiguous,
one float dtype), else the reference (:class:`.conv_ops.ConvOps`, through ``super()``). The
products of a convolution are the backend's ``matmul`` / ``matmuls`` (MKL or NumPy's BLAS on
the shared thread pool), unchanged."""
from __future__ import annotations

import numpy

_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))

#: Channels from which im2col / col2im run as the Numba kernel: below, the reference's copies
#: of whole strided planes are faster (measured: 0.5 ms against 2.5 ms for 128 x 28 x 28 x 1,
#: 3x3; 1.0 ms against 0.45 ms at 8 channels).
KERNEL_MIN_CHANNELS = 4


def _contiguous(*arrays):
    return all(isinstance(a, numpy.ndarray) and a.flags.c_contiguous for a in arrays)


def _axes(rows, cols, dilated=True):
    """The kernels' geometry arguments: (kernel, stride, [dilation,] pad_before, out) per axis."""
    pick = (0, 1, 2, 3, 5) if dilated else (0, 1, 3, 5)
    return tuple(int(rows[i]) for i in pick) + tuple(int(cols[i]) for i in pick)


class NumpyConvOps:
    """Overrides of :class:`.conv_ops.ConvOps` for :class:`.numpy_backend.NumpyBackend` (which
    provides ``_kernels`` and ``_kernel``: the loaded Numba module and the parallel / serial choice)."""

    def _conv_kernel(self, name, size, *arrays):
        nb = self._kernels()
        if nb is None or not _contiguous(*arrays) or arrays[0].dtype not in _FLOATS:
            return None
        from . import _numba_conv

        return self._kernel(getattr(_numba_conv, name), size, *arrays)

    def im2col(self, x, rows, cols, out=None):
        """The reference's im2col as one Numba pass (from ``KERNEL_MIN_CHANNELS`` channels)."""
        n, c = x.shape[0], x.shape[3]
        shape = (n * rows[5] * cols[5], rows[0] * cols[0] * c)
        if out is None and x.ndim == 4:
            out = numpy.empty(shape, dtype=x.dtype)
        one_by_one = rows[0] == cols[0] == 1 and rows[1] == cols[1] == 1 and not (rows[3] or rows[4] or cols[3]
                                                                                  or cols[4])
        if x.ndim == 4 and not one_by_one and out.shape == shape and c >= KERNEL_MIN_CHANNELS:
            kernel = self._conv_kernel("im2col", out.size, x, out)
            if kernel is not None:
                kernel(x, out, *_axes(rows, cols))
                return out
        return super().im2col(x, rows, cols, out=out)

    def col2im(self, dcols, x_shape, rows, cols, out=None):
        """The reference's col2im as one Numba pass per image (from ``KERNEL_MIN_CHANNELS`` channels)."""
        if out is None:
            out = numpy.empty(x_shape, dtype=dcols.dtype)
        if tuple(out.shape) == tuple(x_shape) and dcols.ndim == 2 and x_shape[3] >= KERNEL_MIN_CHANNELS:
            kernel = self._conv_kernel("col2im", dcols.size, dcols, out)
            if kernel is not None:
                kernel(dcols, out, *_axes(rows, cols))
                return out
        return super().col2im(dcols, x_shape, rows, cols, out=out)

    def max_pool2d(self, x, rows, cols, out=None, argmax_out=None):
        """The reference's max pooling (first maximum, int32 argmax) as one Numba pass."""
        shape = (x.shape[0], rows[5], cols[5], x.shape[3])
        if out is None:
            out = numpy.empty(shape, dtype=x.dtype)
        if argmax_out is None:
            argmax_out = numpy.empty(shape, dtype="int32")
        if out.shape == shape and argmax_out.shape == shape:
            kernel = self._conv_kernel("max_pool2d", x.size, x, out)
            if kernel is not None and _contiguous(argmax_out):
                kernel(x, out, argmax_out, *_axes(rows, cols, dilated=False))
                return out, argmax_out
        return super().max_pool2d(x, rows, cols, out=out, argmax_out=argmax_out)

    def max_pool2d_backward(self, dy, argmax, x_shape, rows, cols, out=None):
        """The reference's pooling gradient as one Numba pass per image."""
        if out is None:
            out = numpy.empty(x_shape, dtype=dy.dtype)
        if tuple(out.shape) == tuple(x_shape) and argmax.shape == dy.shape:
            kernel = self._conv_kernel("max_pool2d_backward", out.size, dy, out)
            if kernel is not None and _contiguous(argmax):
                kernel(dy, argmax, out, *_axes(rows, cols, dilated=False))
                return out
        return super().max_pool2d_backward(dy, argmax, x_shape, rows, cols, out=out)
