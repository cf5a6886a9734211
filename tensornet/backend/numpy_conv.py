"""The NumPy backend's convolution and pooling: :mod:`._numba_conv`'s one-pass kernels for
im2col, col2im, max and average pooling, and :mod:`._numba_conv_bias`' bias gradient, where
Numba is in use and the arrays suit them (C-contiguous, one float dtype), else the reference
(:class:`.conv_ops.ConvOps`, through ``super()``). The products of a convolution are the
backend's ``matmul`` / ``matmuls`` (MKL or NumPy's BLAS on the shared thread pool), except for
windows of at most :data:`DIRECT_TAPS` taps (kh kw c), which :mod:`._numba_direct_conv` convolves
directly: no im2col matrix, the context of ``conv2d`` is the image x itself."""
from __future__ import annotations

import importlib

import numpy

_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))

#: Windows with kh kw c at most this many taps run as direct convolution (0: never).
DIRECT_TAPS = 27


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
        """The kernel pair ``name`` of the Numba module ``module`` (in this package), through
        ``_kernel``, for C-contiguous arrays whose first is a float array; else None."""
        nb = self._kernels()
        if nb is None or not _contiguous(*arrays) or arrays[0].dtype not in _FLOATS:
            return None
        return self._kernel(getattr(importlib.import_module("." + module, __package__), name), size, *arrays)

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

    def _direct(self, name, size, *arrays):
        """:mod:`._numba_direct_conv`'s kernel ``name`` (:meth:`_conv_kernel`), for arrays of one dtype."""
        if any(a.dtype != arrays[0].dtype for a in arrays):
            return None
        return self._conv_kernel(name, size, *arrays, module="_numba_direct_conv")

    def conv2d(self, x, kernel, bias, rows, cols, out=None, cols_out=None):
        """The reference's z = im2col(x) @ K (+ bias); a window of at most :data:`DIRECT_TAPS`
        taps as :mod:`._numba_direct_conv`' direct convolution, whose context is x itself."""
        if isinstance(x, numpy.ndarray) and x.ndim == 4 and rows[0] * cols[0] * x.shape[3] <= DIRECT_TAPS:
            f = kernel.shape[3]
            shape = (x.shape[0], rows[5], cols[5], f)
            z = numpy.empty(shape, dtype=x.dtype) if out is None else out
            if z.shape == shape and kernel.ndim == 4:
                conv = self._direct("direct_conv2d", z.size * rows[0] * cols[0] * x.shape[3], x, kernel, z)
                if conv is not None:
                    conv(x, kernel, z, *_axes(rows, cols))
                    if bias is not None:
                        self.bias_add(z.reshape(-1, f), bias, out=z.reshape(-1, f))
                    return z, x
        return super().conv2d(x, kernel, bias, rows, cols, out=out, cols_out=cols_out)

    def _direct_backward(self, dz, x, kernel, rows, cols, dx_out, dkernel_out, dbias_out, need_dx):
        """dK and dbias of a direct convolution (context x) in one pass; dx = col2im(dz K^T)."""
        from ._numba_direct_conv import direct_conv2d_grads
        from ._numba_kernels import row_blocks

        f = kernel.shape[3]
        dz = numpy.ascontiguousarray(dz)
        dk = dkernel_out if dkernel_out is not None and _contiguous(dkernel_out) else numpy.empty(kernel.shape,
                                                                                                 x.dtype)
        db = dbias_out if dbias_out is not None and _contiguous(dbias_out) else numpy.empty(f, x.dtype)
        grads = self._direct("direct_conv2d_grads", dz.size * rows[0] * cols[0] * x.shape[3], x, dz, dk, db)
        if grads is None or dz.size != x.shape[0] * rows[5] * cols[5] * f or dk.shape != kernel.shape:
            return None
        grads(x, dz, dk, db, dbias_out is not None, row_blocks(direct_conv2d_grads, grads, x.shape[0] * rows[5]),
              *_axes(rows, cols))
        if dkernel_out is not None and dk is not dkernel_out:
            dkernel_out[...] = dk
            dk = dkernel_out
        if dbias_out is not None and db is not dbias_out:
            dbias_out[...] = db
        dx = None
        if need_dx:
            shape = (dz.size // f, rows[0] * cols[0] * x.shape[3])
            dcols = self.matmul(dz.reshape(-1, f), kernel.reshape(-1, f), trans_b=True,
                                out=self.scratch(("conv2d_dcols", shape), shape, dz.dtype))
            dx = self.col2im(dcols, x.shape, rows, cols, out=dx_out)
        return dx, dk, dbias_out

    def conv2d_backward(self, dz, patches, x_shape, kernel, rows, cols, dx_out=None, dkernel_out=None,
                        dbias_out=None, need_dx=True):
        """The reference's gradients, with dbias = sum_rows(dz) as :mod:`._numba_conv_bias`' pass;
        for a context that is the image x (:meth:`conv2d`'s direct convolution), dK and dbias as
        :mod:`._numba_direct_conv`' direct pass (im2col(x) and the reference where it does not apply)."""
        if isinstance(patches, numpy.ndarray) and patches.ndim == 4:
            got = self._direct_backward(dz, patches, kernel, rows, cols, dx_out, dkernel_out, dbias_out, need_dx)
            if got is not None:
                return got
            patches = self.im2col(patches, rows, cols)
        f = kernel.shape[3]
        dz2 = dz.reshape(-1, f) if isinstance(dz, numpy.ndarray) and dz.flags.c_contiguous else None
        bias_kernel = None
        if dbias_out is not None and dz2 is not None and _contiguous(dbias_out) and dbias_out.shape == (f,):
            bias_kernel = self._conv_kernel("sum_rows", dz2.size, dz2, dbias_out, module="_numba_conv_bias")
        if bias_kernel is None:
            return super().conv2d_backward(dz, patches, x_shape, kernel, rows, cols, dx_out=dx_out,
                                           dkernel_out=dkernel_out, dbias_out=dbias_out, need_dx=need_dx)
        from ._numba_conv_bias import sum_rows
        from ._numba_kernels import row_blocks

        bias_kernel(dz2, dbias_out, row_blocks(sum_rows, bias_kernel, dz2.shape[0]))
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
