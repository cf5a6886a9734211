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
:mod:`._numba_kernels`, both cached on disk. They follow the reference's order of operations in
the array's dtype (sums row after row, as NumPy's reduction over axis 0; mean = sum / N; no
fused multiply-adds), so they match it bit for bit (``tests/test_backend_numpy_batch_norm.py``
checks it), and a saved model resumes to the same weights on either path.
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
    x_hat = (x - mean) inv_std;  y = gamma x_hat + beta.

    A block's sums live in its own small arrays (which alias nothing, so the row loops vectorize)
    and are copied out at the end."""
    n, features = x.shape
    one = x.dtype.type(1)
    count = x.dtype.type(n)
    blocks = (features + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for block in prange(blocks):
        start = block * COLUMN_BLOCK
        stop = min(start + COLUMN_BLOCK, features)
        width = stop - start
        m = np.zeros(width, x.dtype)
        q = np.zeros(width, x.dtype)
        r = np.empty(width, x.dtype)
        for i in range(n):
            row = x[i, start:stop]
            for j in range(width):
                m[j] += row[j]
        for j in range(width):
            m[j] = m[j] / count
        for i in range(n):
            row, h = x[i, start:stop], x_hat[i, start:stop]
            for j in range(width):
                d = row[j] - m[j]
                h[j] = d
                q[j] += d * d
        for j in range(width):
            q[j] = q[j] / count
            r[j] = one / np.sqrt(q[j] + epsilon)
        g, b = gamma[start:stop], beta[start:stop]
        for i in range(n):
            h, out = x_hat[i, start:stop], y[i, start:stop]
            for j in range(width):
                t = h[j] * r[j]
                h[j] = t
                out[j] = t * g[j] + b[j]
        mean[start:stop] = m
        var[start:stop] = q
        inv_std[start:stop] = r


def _batch_norm_backward(dy, x_hat, inv_std, gamma, dx, dgamma, dbeta):
    """:meth:`Backend.batch_norm_backward` on dy, x_hat (N, F), N > 0, into dx (N, F) and
    dgamma, dbeta (F,):

    dbeta = sum_i dy_i;  dgamma = sum_i dy_i x_hat_i;
    dx = (dy - (x_hat dgamma / N + dbeta / N)) gamma inv_std  (block-local sums, as the forward)."""
    n, features = dy.shape
    inv_n = dy.dtype.type(1.0 / n)
    blocks = (features + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for block in prange(blocks):
        start = block * COLUMN_BLOCK
        stop = min(start + COLUMN_BLOCK, features)
        width = stop - start
        sb = np.zeros(width, dy.dtype)
        sg = np.zeros(width, dy.dtype)
        for i in range(n):
            d, h = dy[i, start:stop], x_hat[i, start:stop]
            for j in range(width):
                sb[j] += d[j]
                sg[j] += d[j] * h[j]
        cb, cg, scale = np.empty(width, dy.dtype), np.empty(width, dy.dtype), np.empty(width, dy.dtype)
        for j in range(width):
            cb[j] = sb[j] * inv_n
            cg[j] = sg[j] * inv_n
            scale[j] = gamma[start + j] * inv_std[start + j]
        for i in range(n):
            d, h, out = dy[i, start:stop], x_hat[i, start:stop], dx[i, start:stop]
            for j in range(width):
                out[j] = (d[j] - (h[j] * cg[j] + cb[j])) * scale[j]
        dbeta[start:stop] = sb
        dgamma[start:stop] = sg


def _dropout_forward(x, words, single, first, skip, rate, scale, zero, y, mask):
    """:meth:`Backend.dropout_forward` on flat x from PCG64's raw outputs, that is the reference's
    uniform draws u without NumPy's per-value calls:

    float64: ``words`` the raw 64-bit outputs, u_i = (words_i >> 11) 2^-53 (NumPy's ``next_double``);
    float32 (``single``): ``words`` the same outputs as 32-bit halves, low half first (NumPy's
    ``next_uint32`` order), after ``skip`` (0 or 1) copies of ``first``, the half the generator
    held back from its previous draw: u_i = (word_i >> 8) 2^-24 (``next_float``);
    mask_i = scale where u_i >= rate, else 0;  y_i = x_i mask_i.

    The shifted words fit in int32 (float32) or int64 (float64), the conversions that vectorize."""
    n = x.shape[0]
    if skip and n:
        m = scale if x.dtype.type(np.int64(first >> np.uint64(8))) * x.dtype.type(1.0 / 16777216.0) >= rate \
            else zero
        mask[0] = m
        y[0] = x[0] * m
    start = skip if n else 0
    xs, ys, ms = x[start:], y[start:], mask[start:]
    if single:
        unit = x.dtype.type(1.0 / 16777216.0)
        for i in prange(xs.shape[0]):
            m = scale if x.dtype.type(np.int32(words[i] >> np.uint32(8))) * unit >= rate else zero
            ms[i] = m
            ys[i] = xs[i] * m
    else:
        unit = x.dtype.type(1.0 / 9007199254740992.0)
        for i in prange(xs.shape[0]):
            m = scale if x.dtype.type(np.int64(words[i] >> np.uint64(11))) * unit >= rate else zero
            ms[i] = m
            ys[i] = xs[i] * m


batch_norm_forward = _twin(_batch_norm_forward, error_model="numpy")
batch_norm_backward = _twin(_batch_norm_backward, error_model="numpy")
dropout_forward = _twin(_dropout_forward, error_model="numpy")
