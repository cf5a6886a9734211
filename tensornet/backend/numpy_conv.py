"""The NumPy backend's convolution and pooling: :mod:`._numba_conv`'s one-pass kernels for
im2col, col2im, max and average pooling, and :mod:`._numba_conv_bias`' bias gradient, where
Numba is in use and the arrays suit them (C-contiguous, one float dtype), else the reference
(:class:`.conv_ops.ConvOps`, through ``super()``). The products of a convolution are the
backend's ``matmul`` / ``matmuls`` (MKL or NumPy's BLAS on the shared thread pool), unchanged."""
from __future__ import annotations

import numpy

_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))


def _contiguous(*arrays):
    return all(isinstance(a, numpy.ndarray) and a.flags.c_contiguous for a in arrays)


def _axes(rows, cols, dilated=True):
    """The kernels' geometry arguments: (kernel, stride, [dilation,] pad_before, out) per axis."""
    pick = (0, 1, 2, 3, 5) if dilated else (0, 1, 3, 5)
    return tuple(int(rows[i]) for i in pick) + tuple(int(cols[i]) for i in pick)


def _pool_shape(x_shape, rows, cols):
    return (x_shape[0], rows[5], cols[5], x_shape[3])


class NumpyConvOps:
    """Overrides of :class:`.conv_ops.ConvOps` for :class:`.numpy_backend.NumpyBackend` (which
    provides ``_kernels`` and ``_kernel``: the loaded Numba module and the parallel / serial choice)."""

    def _conv_kernel(self, name, size, *arrays, module="_numba_conv"):
        nb = self._kernels()
        if nb is None or not _contiguous(*arrays) or arrays[0].dtype not in _FLOATS:
            return None
        from . import _numba_conv, _numba_conv_bias

        kernels = _numba_conv if module == "_numba_conv" else _numba_conv_bias
        return self._kernel(getattr(kernels, name), size, *arrays)

    def im2col(self, x, rows, cols, out=None):
        """The reference's im2col as one Numba pass."""
        n, c = x.shape[0], x.shape[3]
        shape = (n * rows[5] * cols[5], rows[0] * cols[0] * c)
        if out is None and x.ndim == 4:
            out = numpy.empty(shape, dtype=x.dtype)
        one_by_one = rows[0] == cols[0] == 1 and rows[1] == cols[1] == 1 and not (rows[3] or rows[4] or cols[3]
                                                                                  or cols[4])
        if x.ndim == 4 and not one_by_one and out.shape == shape:
            kernel = self._conv_kernel("im2col", out.size, x, out)
            if kernel is not None:
                kernel(x, out, *_axes(rows, cols))
                return out
        return super().im2col(x, rows, cols, out=out)

    def col2im(self, dcols, x_shape, rows, cols, out=None):
        """The reference's col2im as one Numba pass per image (a gather per pixel)."""
        if out is None:
            out = numpy.empty(x_shape, dtype=dcols.dtype)
        if tuple(out.shape) == tuple(x_shape) and dcols.ndim == 2:
            kernel = self._conv_kernel("col2im", dcols.size, dcols, out)
            if kernel is not None:
                kernel(dcols, out, *_axes(rows, cols))
                return out
        return super().col2im(dcols, x_shape, rows, cols, out=out)

    def conv2d_backward(self, dz, patches, x_shape, kernel, rows, cols, dx_out=None, dkernel_out=None,
                        dbias_out=None, need_dx=True):
        """The reference's gradients, with dbias = sum_rows(dz) as :mod:`._numba_conv_bias`' pass."""
        f = kernel.shape[3]
        dz2 = dz.reshape(-1, f) if isinstance(dz, numpy.ndarray) and dz.flags.c_contiguous else None
        bias_kernel = None
        if dbias_out is not None and dz2 is not None and _contiguous(dbias_out) and dbias_out.shape == (f,):
            bias_kernel = self._conv_kernel("sum_rows", dz2.size, dz2, dbias_out, module="_numba_conv_bias")
        if bias_kernel is None:
            return super().conv2d_backward(dz, patches, x_shape, kernel, rows, cols, dx_out=dx_out,
                                           dkernel_out=dkernel_out, dbias_out=dbias_out, need_dx=need_dx)
        from . import _numba_conv_bias

        bias_kernel(dz2, dbias_out, _numba_conv_bias.parts(bias_kernel, dz2.shape[0]))
        dx, dkernel, _ = super().conv2d_backward(dz, patches, x_shape, kernel, rows, cols, dx_out=dx_out,
                                                 dkernel_out=dkernel_out, need_dx=need_dx)
        return dx, dkernel, dbias_out

    def max_pool2d(self, x, rows, cols, out=None, argmax_out=None):
        """The reference's max pooling (first maximum, int32 argmax) as one Numba pass."""
        shape = _pool_shape(x.shape, rows, cols)
        if out is None:
            out = numpy.empty(shape, dtype=x.dtype)
        if argmax_out is None:
            argmax_out = numpy.empty(shape, dtype="int32")
        if out.shape == shape and argmax_out.shape == shape and argmax_out.dtype == numpy.int32:
            kernel = self._conv_kernel("max_pool2d", x.size, x, out)
            if kernel is not None and _contiguous(argmax_out):
                kernel(x, out, argmax_out, *_axes(rows, cols, dilated=False))
                return out, argmax_out
        return super().max_pool2d(x, rows, cols, out=out, argmax_out=argmax_out)

    def max_pool2d_backward(self, dy, argmax, x_shape, rows, cols, out=None):
        """The reference's pooling gradient as one Numba pass per image (a gather per pixel)."""
        if out is None:
            out = numpy.empty(x_shape, dtype=dy.dtype)
        if tuple(out.shape) == tuple(x_shape) and argmax.shape == dy.shape:
            kernel = self._conv_kernel("max_pool2d_backward", out.size, dy, out)
            if kernel is not None and _contiguous(argmax):
                kernel(dy, argmax, out, *_axes(rows, cols, dilated=False))
                return out
        return super().max_pool2d_backward(dy, argmax, x_shape, rows, cols, out=out)

    def avg_pool2d(self, x, rows, cols, out=None):
        """The reference's average pooling (padding excluded from the count) as one Numba pass."""
        shape = _pool_shape(x.shape, rows, cols)
        if out is None:
            out = numpy.empty(shape, dtype=x.dtype)
        if out.shape == shape:
            kernel = self._conv_kernel("avg_pool2d", x.size, x, out)
            if kernel is not None:
                kernel(x, out, *_axes(rows, cols, dilated=False))
                return out
        return super().avg_pool2d(x, rows, cols, out=out)

    def avg_pool2d_backward(self, dy, x_shape, rows, cols, out=None):
        """The reference's average pooling gradient as one Numba pass per image (a gather)."""
        if out is None:
            out = numpy.empty(x_shape, dtype=dy.dtype)
        if tuple(out.shape) == tuple(x_shape) and dy.shape == _pool_shape(x_shape, rows, cols):
            kernel = self._conv_kernel("avg_pool2d_backward", out.size, dy, out)
            if kernel is not None:
                kernel(dy, out, *_axes(rows, cols, dilated=False))
                return out
        return super().avg_pool2d_backward(dy, x_shape, rows, cols, out=out)
