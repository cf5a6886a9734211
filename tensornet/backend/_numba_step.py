"""A whole training step of a Dense network, compiled: forward, softmax cross-entropy, backward
and the SGD update in one call with no Python in between (:meth:`NumpyBackend.compiled_mlp_step`,
planned by :mod:`tensornet.compiled_step`).

Why: the layered step (one backend call per layer and phase) spends a quarter to a third of its
time outside the matrix products on the 2-core machine -- Python, and element-wise passes over data
another core's product just wrote. Here each thread keeps its data (bench/NOTES.md, session 7):

1. Thread t takes rows r_t of the batch forward through every layer (``h = f(x W + b)`` with
   f linear or relu; the last layer's softmax, its cross-entropy and ``dz = (p - y) / B``) and
   back through every input gradient (``dz_prev = (dz W^T) * 1[h_prev > 0]``). Each product is
   an MKL ``cblas_?gemm`` on its rows, run on its own thread (MKL runs single-threaded inside an
   OpenMP parallel region); the element-wise work follows it on the rows just written.
2. Thread t then makes rows k_t of every weight gradient (``dW[k_t] = h_prev[:, k_t]^T dz``) and
   columns c_t of every bias gradient (``db = sum_rows(dz)``, rows in order), and applies the
   SGD update (tensornet's kernel, :func:`._numba_kernels.sgd`) to exactly the weights and
   biases whose gradients it made.

The element-wise arithmetic is the layered kernels' (``bias_relu``, ``relu_backward``,
``bias_softmax``, ``softmax_xent_dense`` / ``_sparse``, ``sgd``) in the same order and dtype;
what differs is the order in which a row-split product sums, so results agree with the layered
step to rounding (``tests/test_compiled_step.py``).

``table`` describes the network, one int64 row per Dense layer: offset of the kernel in the flat
parameter (and gradient) buffer, offset of the bias (-1: none), fan-in k, units n, offset of the
layer's (B, n) output in ``acts`` and of its gradient in ``dz``, and 1 when the layer's
activation is relu (0: linear; the last layer's is the softmax).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from . import _numba_kernels
from ._numba_blas import _gemm_lp64
from .shared_pool import NO_TRANS, TRANS

_sgd_serial = _numba_kernels.sgd[1]  # the SGD arithmetic, on one thread's slices

#: Columns of a layer's row in ``table``.
W_OFFSET, B_OFFSET, FAN_IN, UNITS, OUT_OFFSET, RELU = range(6)


@numba.njit(nogil=True, inline="always")
def _gemm(gemm, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, one, zero):
    """c = op(a) op(b) (row-major, operands as addresses; ``one``'s type picks sgemm or dgemm)."""
    _gemm_lp64(gemm, trans_a, trans_b, m, n, k, one, a, lda, b, ldb, zero, c, ldc)


@numba.njit(nogil=True, inline="always")
def _sgd(w, g, v, lr, momentum, weight_decay, mode, has_decay, tiny):
    """The ``sgd`` kernel on one thread's slices, called with ``mode`` and ``has_decay`` as
    constants so that each call site is compiled for its case (branch-free, vectorized loop)."""
    if has_decay:
        if mode == 0:
            _sgd_serial(w, g, v, lr, momentum, weight_decay, 0, True, tiny)
        elif mode == 1:
            _sgd_serial(w, g, v, lr, momentum, weight_decay, 1, True, tiny)
        else:
            _sgd_serial(w, g, v, lr, momentum, weight_decay, 2, True, tiny)
    elif mode == 0:
        _sgd_serial(w, g, v, lr, momentum, weight_decay, 0, False, tiny)
    elif mode == 1:
        _sgd_serial(w, g, v, lr, momentum, weight_decay, 1, False, tiny)
    else:
        _sgd_serial(w, g, v, lr, momentum, weight_decay, 2, False, tiny)


@numba.njit(nogil=True, inline="always")
def _softmax_rows(acts, out, n, bias, b_off, probs, grad, y, labels, sparse, r0, r1, inv_batch):
    """Rows r0:r1 of the last layer: logits z += b; p = softmax(z) (exp in the dtype, sum in
    float64); loss -sum_j y_j log_softmax(z)_j; grad = (p sum_j y_j - y) / B (sparse: y one-hot
    at the label). Returns the rows' loss sum."""
    zero = acts.dtype.type(0)
    loss = 0.0
    for i in range(r0, r1):
        z = acts[out + i * n:out + (i + 1) * n]
        p, g = probs[i], grad[out + i * n:out + (i + 1) * n]
        if b_off >= 0:
            for j in range(n):
                z[j] = z[j] + bias[j]
        m = np.float32(-np.inf)  # takes z's dtype, as in the layered kernels
        for j in range(n):
            if z[j] > m or z[j] != z[j]:
                m = z[j]
        s = 0.0
        for j in range(n):
            e = math.exp(z[j] - m)
            p[j] = e
            s += e
        for j in range(n):
            p[j] = p[j] / s
        log_s = math.log(s)
        if sparse:
            label = labels[i]
            loss -= (z[label] - m) - log_s
            for j in range(n):
                g[j] = p[j] * inv_batch
            g[label] = (p[label] - 1) * inv_batch  # as softmax_xent_sparse computes it
        else:
            total = zero
            for j in range(n):
                total += y[i, j]
                loss -= y[i, j] * ((z[j] - m) - log_s)
            for j in range(n):
                g[j] = (p[j] * total - y[i, j]) * inv_batch
    return loss


@numba.njit(parallel=True, nogil=True, cache=True)
def mlp_sgd_step(gemm, x, y, labels, sparse, params, grads, velocity, table, acts, dz, probs, lr, momentum,
                 weight_decay, mode, has_decay, tiny, losses, update):
    """One SGD step of the network in ``table`` on the batch ``x`` (B, k0) with targets ``y``
    (B, n_last; ``labels`` (B,) when ``sparse``): the softmax ``probs`` are left in ``probs``,
    the gradients in ``grads``, the update in ``params`` and ``velocity`` (the ``sgd`` kernel's
    ``lr, momentum, weight_decay, mode, has_decay, tiny``; with ``update`` False the gradients are
    made and nothing is updated). Returns the loss summed over the batch."""
    batch, layers, threads = x.shape[0], table.shape[0], losses.shape[0]
    item = params.itemsize
    one, zero = params.dtype.type(1), params.dtype.type(0)
    inv_batch = params.dtype.type(1.0 / batch)
    x_addr, p_addr, g_addr = x.ctypes.data, params.ctypes.data, grads.ctypes.data
    a_addr, d_addr = acts.ctypes.data, dz.ctypes.data
    for t in prange(threads):  # 1. rows r0:r1, forward and back through the input gradients
        r0, r1 = (batch * t) // threads, (batch * (t + 1)) // threads
        losses[t] = 0.0
        if r1 == r0:
            continue
        for l in range(layers):
            w_off, b_off, k, n, out, relu = table[l]
            src = x_addr + r0 * k * item if l == 0 else a_addr + (table[l - 1, OUT_OFFSET] + r0 * k) * item
            _gemm(gemm, NO_TRANS, NO_TRANS, r1 - r0, n, k, src, k, p_addr + w_off * item, n,
                  a_addr + (out + r0 * n) * item, n, one, zero)
            bias = params[max(b_off, 0):max(b_off, 0) + n]
            if l == layers - 1:
                losses[t] = _softmax_rows(acts, out, n, bias, b_off, probs, dz, y, labels, sparse, r0, r1, inv_batch)
                continue
            for i in range(r0, r1):  # slices: a loop from a nonzero start does not vectorize
                z = acts[out + i * n:out + (i + 1) * n]
                if b_off >= 0 and relu:  # h = relu(z + b), NaN kept
                    for j in range(n):
                        v = z[j] + bias[j]
                        z[j] = v if (v > 0 or v != v) else zero
                elif b_off >= 0:
                    for j in range(n):
                        z[j] = z[j] + bias[j]
                elif relu:
                    for j in range(n):
                        v = z[j]
                        z[j] = v if (v > 0 or v != v) else zero
        for l in range(layers - 1, 0, -1):
            w_off, b_off, k, n, out, relu = table[l]
            below = table[l - 1, OUT_OFFSET]
            _gemm(gemm, NO_TRANS, TRANS, r1 - r0, k, n, d_addr + (out + r0 * n) * item, n, p_addr + w_off * item, n,
                  d_addr + (below + r0 * k) * item, k, one, zero)
            if table[l - 1, RELU]:  # dz_prev = dh * 1[h_prev > 0] (a NaN in dh stays NaN)
                grad, h = dz[below + r0 * k:below + r1 * k], acts[below + r0 * k:below + r1 * k]
                for i in range(grad.shape[0]):
                    grad[i] = grad[i] * (one if h[i] > 0 else zero)
    for t in prange(threads):  # 2. rows k0:k1 of every weight gradient, columns c0:c1 of every bias's
        for l in range(layers):
            w_off, b_off, k, n, out, relu = table[l]
            k0, k1 = (k * t) // threads, (k * (t + 1)) // threads
            src = x_addr + k0 * item if l == 0 else a_addr + (table[l - 1, OUT_OFFSET] + k0) * item
            if k1 > k0:
                _gemm(gemm, TRANS, NO_TRANS, k1 - k0, n, batch, src, k, d_addr + out * item, n,
                      g_addr + (w_off + k0 * n) * item, n, one, zero)
            c0, c1 = (n * t) // threads, (n * (t + 1)) // threads
            if b_off >= 0 and c1 > c0:
                column_sums = grads[b_off + c0:b_off + c1]
                column_sums[:] = zero
                for i in range(batch):
                    row = dz[out + i * n + c0:out + i * n + c1]
                    for j in range(c1 - c0):
                        column_sums[j] += row[j]
        for l in range(layers if update else 0):  # after all the products (0.1 ms faster: NOTES, change 15)
            w_off, b_off, k, n, out, relu = table[l]
            k0, k1 = (k * t) // threads, (k * (t + 1)) // threads
            c0, c1 = (n * t) // threads, (n * (t + 1)) // threads
            lo, hi = w_off + k0 * n, w_off + k1 * n
            if hi > lo:
                _sgd(params[lo:hi], grads[lo:hi], velocity[lo:hi], lr, momentum, weight_decay, mode, has_decay,
                     tiny)
            lo, hi = b_off + c0, b_off + c1
            if b_off >= 0 and hi > lo:
                _sgd(params[lo:hi], grads[lo:hi], velocity[lo:hi], lr, momentum, weight_decay, mode, has_decay,
                     tiny)
    return losses.sum()
