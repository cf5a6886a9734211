"""The NumPy backend's training-mode batch normalization and dropout product: each one Numba call
(:mod:`._numba_batch_norm`, the kernel of the same name) where Numba is in use and the arrays
suit it, and :class:`~tensornet.backend.array_ops.ArrayOps`' reference (``super()``) otherwise.

The references are about ten NumPy passes (forward) and six (backward) over the (N, F) batch,
each a Python call; the kernels do each in one call, a thread per block of columns
(``python bench/compare.py --cases mlp-512-bn-dropout`` times the row that uses them).
"""
from __future__ import annotations

import numpy

_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))


def _kernels_module():
    from . import _numba_batch_norm

    return _numba_batch_norm


def _rows(array, shape, dtype):
    """True when ``array`` is a C-contiguous NumPy array of ``shape`` and ``dtype``."""
    return (isinstance(array, numpy.ndarray) and array.shape == shape and array.dtype == dtype
            and array.flags.c_contiguous)


class NumpyBatchNormOps:
    """The Numba batch normalization and dropout (a mixin of
    :class:`~tensornet.backend.numpy_backend.NumpyBackend`, which provides ``_kernels``,
    ``_kernel``, ``scratch`` and ``_uniform_draws``)."""

    def _batch_norm_kernels(self, x, *vectors):
        """:mod:`._numba_batch_norm` when Numba is in use and ``x`` is a non-empty C-contiguous
        (N, F) float array with ``vectors`` (F,) C-contiguous arrays of its dtype, else None."""
        if self._kernels() is None or not isinstance(x, numpy.ndarray) or x.ndim != 2 or x.shape[0] == 0:
            return None
        if x.dtype not in _FLOATS or not x.flags.c_contiguous:
            return None
        if not all(_rows(vector, (x.shape[1],), x.dtype) for vector in vectors):
            return None
        return _kernels_module()

    def batch_norm_forward(self, x, gamma, beta, epsilon, out=None, x_hat_out=None):
        bn = self._batch_norm_kernels(x, gamma, beta) if gamma is not None and beta is not None else None
        if bn is not None:
            for buffer in (out, x_hat_out):
                if buffer is not None and not _rows(buffer, x.shape, x.dtype):
                    bn = None
        if bn is None:
            return super().batch_norm_forward(x, gamma, beta, epsilon, out=out, x_hat_out=x_hat_out)
        y = numpy.empty_like(x) if out is None else out
        x_hat = numpy.empty_like(x) if x_hat_out is None else x_hat_out
        features = x.shape[1]
        inv_std, mean, var = (numpy.empty(features, x.dtype) for _ in range(3))
        kernel = self._kernel(bn.batch_norm_forward, x.size, x, gamma, beta, y, x_hat)
        kernel(x, gamma, beta, x.dtype.type(epsilon), y, x_hat, inv_std, mean, var)
        return y, x_hat, inv_std, mean, var

    def batch_norm_backward(self, dy, x_hat, inv_std, gamma, dx_out=None, dgamma_out=None, dbeta_out=None):
        bn = self._batch_norm_kernels(dy, inv_std, gamma) if gamma is not None else None
        if bn is not None and not _rows(x_hat, dy.shape, dy.dtype):
            bn = None
        if bn is not None:
            for buffer, shape in ((dx_out, dy.shape), (dgamma_out, inv_std.shape), (dbeta_out, inv_std.shape)):
                if buffer is not None and not _rows(buffer, shape, dy.dtype):
                    bn = None
        if bn is None:
            return super().batch_norm_backward(dy, x_hat, inv_std, gamma, dx_out=dx_out, dgamma_out=dgamma_out,
                                               dbeta_out=dbeta_out)
        dx = numpy.empty_like(dy) if dx_out is None else dx_out
        dgamma = numpy.empty_like(inv_std) if dgamma_out is None else dgamma_out
        dbeta = numpy.empty_like(inv_std) if dbeta_out is None else dbeta_out
        kernel = self._kernel(bn.batch_norm_backward, dy.size, dy, x_hat, dx)
        kernel(dy, x_hat, inv_std, gamma, dx, dgamma, dbeta)
        return dx, dgamma, dbeta

    def dropout_forward(self, x, rng, rate, mask_out=None, out=None):
        """With a PCG64 generator the reference's draws come as the generator's raw 64-bit
        outputs (``random_raw``, one call; the 32-bit half PCG64 holds back between float32
        draws read from and written to its state), turned into mask and product in one Numba
        pass (:func:`._numba_batch_norm._dropout_forward`): the same values, the generator left
        in the same state."""
        bit_generator = getattr(rng, "bit_generator", None)
        usable = (self._kernels() is not None and type(bit_generator) is numpy.random.PCG64
                  and isinstance(x, numpy.ndarray) and x.dtype in _FLOATS and x.flags.c_contiguous
                  and (mask_out is None or _rows(mask_out, x.shape, x.dtype))
                  and (out is None or _rows(out, x.shape, x.dtype)))
        if not usable:
            return super().dropout_forward(x, rng, rate, mask_out=mask_out, out=out)
        bn = _kernels_module()
        y = numpy.empty_like(x) if out is None else out
        mask = numpy.empty_like(x) if mask_out is None else mask_out
        size, first, skip = x.size, numpy.uint64(0), 0
        if x.dtype == numpy.float64:
            raw = bit_generator.random_raw(size)
        elif size:
            state = bit_generator.state
            skip = state["has_uint32"]
            first = numpy.uint64(state["uinteger"])
            count = size - skip  # 32-bit words still to draw
            raw = bit_generator.random_raw((count + 1) // 2)
            state = bit_generator.state  # as next_uint32 leaves it: the last word's high half, held when odd
            state["has_uint32"] = count % 2
            if count:
                state["uinteger"] = int(raw[-1] >> numpy.uint64(32))
            bit_generator.state = state
        else:
            raw = numpy.empty(0, numpy.uint64)
        kernel = self._kernel(bn.dropout_forward, size, x, y, mask)
        t = x.dtype.type
        words = raw if x.dtype == numpy.float64 else raw.view(numpy.uint32)
        kernel(x.reshape(-1), words, x.dtype == numpy.float32, first, skip, t(rate), t(1.0 / (1.0 - rate)), t(0),
               y.reshape(-1), mask.reshape(-1))
        return y, mask
