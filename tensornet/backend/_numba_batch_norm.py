"""The Numba versions of :class:`~tensornet.backend.base.Backend`'s training-mode batch
normalization and of its dropout product, for :mod:`.numpy_batch_norm`; each kernel is named
after the backend method it implements and tested against that method's reference on random
inputs (``tests/test_backend_numpy_batch_norm.py``).

Why: the references run each equation as a NumPy ufunc, so a forward pass is about ten passes
over the (N, F) batch with a Python call each, and a backward pass six. Here each is one call:
the columns are cut into blocks of :data:`COLUMN_BLOCK`, each block handled by one thread
(``prange``) through all its equations while its rows are in cache, the inner loop running
along a row's contiguous columns (so it vectorizes).

Each kernel exists twice (``<name>[0]`` parallel, ``<name>[1]`` serial), as in
:mod:`._numba_kernels`, both cached on disk. Sums accumulate in the array's dtype, row after
row, as NumPy's reduction over axis 0 does; the results agree with the reference to float
rounding, not bit for bit.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from . import _numba_threads  # noqa: F401  (chooses Numba's threading layer before any kernel)
from ._numba_kernels import _twin

__all__ = ["batch_norm_forward", "batch_norm_backward", "dropout_forward"]

#: Columns one thread takes at a time: 128 rows of 64 float32 columns are 32 KiB, one L1 cache.
COLUMN_BLOCK = 64


def _batch_norm_forward(x, gamma, beta, epsilon, y, x_hat, inv_std, mean, var):
    """:meth:`Backend.batch_norm_forward` on x (N, F), N > 0, into y, x_hat (N, F) and inv_std,
    mean, var (F,):

    mean = sum_i x_i / N;  var = sum_i (x_i - mean)^2 / N;  inv_std = 1 / sqrt(var + epsilon);
    x_hat = (x - mean) inv_std;  y = gamma x_hat + beta."""
    n, features = x.shape
    one = x.dtype.type(1)
    inv_n = one / x.dtype.type(n)
    blocks = (features + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for block in prange(blocks):
        start = block * COLUMN_BLOCK
        stop = min(start + COLUMN_BLOCK, features)
        for j in range(start, stop):
            mean[j] = x[0, j]
        for i in range(1, n):
            for j in range(start, stop):
                mean[j] += x[i, j]
        for j in range(start, stop):
            mean[j] *= inv_n
            var[j] = 0
        for i in range(n):
            for j in range(start, stop):
                d = x[i, j] - mean[j]
                x_hat[i, j] = d
                var[j] += d * d
        for j in range(start, stop):
            var[j] *= inv_n
            inv_std[j] = one / np.sqrt(var[j] + epsilon)
        for i in range(n):
            for j in range(start, stop):
                h = x_hat[i, j] * inv_std[j]
                x_hat[i, j] = h
                y[i, j] = h * gamma[j] + beta[j]


def _batch_norm_backward(dy, x_hat, inv_std, gamma, dx, dgamma, dbeta):
    """:meth:`Backend.batch_norm_backward` on dy, x_hat (N, F), N > 0, into dx (N, F) and
    dgamma, dbeta (F,):

    dbeta = sum_i dy_i;  dgamma = sum_i dy_i x_hat_i;
    dx = (dy - (x_hat dgamma / N + dbeta / N)) gamma inv_std."""
    n, features = dy.shape
    inv_n = dy.dtype.type(1) / dy.dtype.type(n)
    blocks = (features + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for block in prange(blocks):
        start = block * COLUMN_BLOCK
        stop = min(start + COLUMN_BLOCK, features)
        for j in range(start, stop):
            dbeta[j] = 0
            dgamma[j] = 0
        for i in range(n):
            for j in range(start, stop):
                g = dy[i, j]
                dbeta[j] += g
                dgamma[j] += g * x_hat[i, j]
        for i in range(n):
            for j in range(start, stop):
                dx[i, j] = (dy[i, j] - (x_hat[i, j] * (dgamma[j] * inv_n) + dbeta[j] * inv_n)) \
                    * (gamma[j] * inv_std[j])


def _dropout_forward(x, u, rate, scale, zero, y):
    """:meth:`Backend.dropout_forward` on flat x and the uniform draws u (same size), in place
    over u: mask = scale where u >= rate, else 0 (written to u);  y = x mask."""
    for i in prange(x.shape[0]):
        m = scale if u[i] >= rate else zero
        u[i] = m
        y[i] = x[i] * m


batch_norm_forward = _twin(_batch_norm_forward, error_model="numpy")
batch_norm_backward = _twin(_batch_norm_backward, error_model="numpy")
dropout_forward = _twin(_dropout_forward, error_model="numpy")
