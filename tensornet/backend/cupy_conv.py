"""The CuPy backend's im2col, col2im and max pooling: the kernels of ``kernels/im2col.cu``
(one output element per thread, gathers only, so deterministic), with the convolution's
products on cuBLAS through ``matmul`` / ``matmuls`` (:class:`.conv_ops.ConvOps`' own
``conv2d``); Conv2D itself goes through cuDNN first where ``TENSORNET_CONV`` selects it
(:mod:`.cupy_cudnn`). Arrays the kernels do not take (not C-contiguous, not float32 / float64, a 1x1
window with nothing to gather) go to the reference (``super()``).

Imports no CuPy itself: :class:`.cupy_backend.CupyBackend` composes it and provides ``xp``,
``_check_like`` and ``_launch_elementwise``, so the mixin also runs on the CPU harness
(``tests/test_kernels_on_cpu_conv.py``)."""
from __future__ import annotations

import numpy

from . import kernels
from .cupy_cudnn import CupyCudnnConvOps


def _ints(*values):
    return tuple(numpy.int32(v) for v in values)


class CupyConvOps(CupyCudnnConvOps):
    """Overrides of :class:`.conv_ops.ConvOps` launching the ``im2col`` kernel family, under
    :class:`.cupy_cudnn.CupyCudnnConvOps` (Conv2D through cuDNN where it is selected)."""

    def _conv_ctype(self, *arrays):
        """The kernels' type name for ``arrays`` (one float dtype, C-contiguous arrays of this
        backend), or None (the reference then runs)."""
        first = arrays[0]
        if first.dtype.name not in kernels.FLOAT_CTYPES:
            return None
        for array in arrays:
            if not isinstance(array, self.xp.ndarray) or array.dtype != first.dtype or not array.flags.c_contiguous:
                return None
        return kernels.FLOAT_CTYPES[first.dtype.name]

    def _conv_out(self, out, shape, like, where, dtype=None):
        if out is None:
            return self.xp.empty(shape, dtype=dtype or like.dtype)
        if tuple(out.shape) != tuple(shape) or out.dtype != (dtype or like.dtype) or not out.flags.c_contiguous:
            raise ValueError(f"{where}: out must be a C-contiguous {dtype or like.dtype} array of shape "
                             f"{tuple(shape)}; got {out.dtype} {tuple(out.shape)}")
        return out

    def im2col(self, x, rows, cols, out=None):
        """The reference's im2col, one ``im2col<T>`` thread per matrix entry."""
        ctype = self._conv_ctype(x) if x.ndim == 4 else None
        one_by_one = rows[0] == cols[0] == 1 and rows[1] == cols[1] == 1 and not any(rows[3:5] + cols[3:5])
        if ctype is None or one_by_one:
            return super().im2col(x, rows, cols, out=out)
        n, h, w, c = x.shape
        out = self._conv_out(out, (n * rows[5] * cols[5], rows[0] * cols[0] * c), x, "im2col")
        if out.size:
            self._launch_elementwise("im2col", f"im2col<{ctype}>", out.size,
                                     (x, out) + _ints(h, w, c, rows[0], rows[1], rows[2], rows[3], rows[5],
                                                      cols[0], cols[1], cols[2], cols[3], cols[5]))
        return out

    def col2im(self, dcols, x_shape, rows, cols, out=None):
        """The reference's col2im, one ``col2im<T>`` thread per input pixel and channel, adding
        the patch entries in the reference's order."""
        ctype = self._conv_ctype(dcols) if dcols.ndim == 2 else None
        if ctype is None:
            return super().col2im(dcols, x_shape, rows, cols, out=out)
        n, h, w, c = x_shape
        out = self._conv_out(out, x_shape, dcols, "col2im")
        if out.size:
            self._launch_elementwise("im2col", f"col2im<{ctype}>", out.size,
                                     (dcols, out) + _ints(h, w, c, rows[0], rows[1], rows[2], rows[3], rows[5],
                                                          cols[0], cols[1], cols[2], cols[3], cols[5]))
        return out

    def max_pool2d(self, x, rows, cols, out=None, argmax_out=None):
        """The reference's max pooling (first maximum, int32 argmax), one thread per output."""
        ctype = self._conv_ctype(x) if x.ndim == 4 else None
        if ctype is None:
            return super().max_pool2d(x, rows, cols, out=out, argmax_out=argmax_out)
        n, h, w, c = x.shape
        shape = (n, rows[5], cols[5], c)
        out = self._conv_out(out, shape, x, "max_pool2d")
        argmax = self._conv_out(argmax_out, shape, x, "max_pool2d", dtype=numpy.dtype("int32"))
        if out.size:
            self._launch_elementwise("im2col", f"max_pool2d<{ctype}>", out.size,
                                     (x, out, argmax) + _ints(h, w, c, rows[0], rows[1], rows[3], rows[5],
                                                              cols[0], cols[1], cols[3], cols[5]))
        return out, argmax

    def max_pool2d_backward(self, dy, argmax, x_shape, rows, cols, out=None):
        """The reference's pooling gradient, one thread per input pixel gathering its windows."""
        ctype = self._conv_ctype(dy) if dy.ndim == 4 else None
        if ctype is None or argmax.dtype != numpy.dtype("int32") or not argmax.flags.c_contiguous:
            return super().max_pool2d_backward(dy, argmax, x_shape, rows, cols, out=out)
        n, h, w, c = x_shape
        out = self._conv_out(out, x_shape, dy, "max_pool2d_backward")
        if out.size:
            self._launch_elementwise("im2col", f"max_pool2d_backward<{ctype}>", out.size,
                                     (dy, argmax, out) + _ints(h, w, c, rows[0], rows[1], rows[3], rows[5],
                                                               cols[0], cols[1], cols[3], cols[5]))
        return out
