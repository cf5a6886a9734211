"""A whole training step of a Dense network, compiled: forward, softmax cross-entropy, backward
and the SGD update in one call with no Python in between (:class:`.mlp_step.MlpStep` calls it,
:mod:`.numpy_whole_step` decides when).

Why: the layered step (one backend call per layer and phase) spends a quarter to a third of its
time outside the matrix products on the 2-core machine -- Python, and element-wise passes over
data another core's product just wrote (bench/README.md, "The compiled step is what makes
784-512-512-10 GEMM-bound"). Here each thread keeps its data:

1. Thread t takes rows r_t of the batch forward through every layer (``h = f(x W + b)`` with
   f linear or relu; the last layer's softmax, its cross-entropy and ``dz = (p - y) / B``) and
   back through every input gradient (``dz_prev = (dz W^T) * 1[h_prev > 0]``). Each product is
   an MKL ``cblas_?gemm`` on its rows, run on its own thread (MKL runs single-threaded inside an
   OpenMP parallel region); the element-wise work follows it on the rows just written.
2. Thread t then makes rows k_t of every weight gradient (``dW[k_t] = h_prev[:, k_t]^T dz``) and
   columns c_t of every bias gradient (``db = sum_rows(dz)``, rows in order), and applies the
   SGD update to exactly the weights and biases whose gradients it made.

The element-wise arithmetic is the layered kernels' own: the row and slice helpers of
:mod:`._numba_kernels` (``bias_relu_row``, ``relu_row``, ``bias_add_row``, ``bias_softmax_row``,
``softmax_cross_entropy_row`` / ``_sparse_row``, ``backprop_relu_slice``, ``sgd_update_slice``),
inlined here. What differs is the order in which a row-split product sums, so results agree
with the layered step to rounding (``tests/test_backend_whole_step.py``).

``table`` describes the network, one int64 row per Dense layer: offset of the kernel in the flat
parameter (and gradient) buffer, offset of the bias (-1: none), fan-in k, units n, offset of the
layer's (B, n) output in ``acts`` and of its gradient in ``dz``, and 1 when the layer's
activation is relu (0: linear; the last layer's is the softmax).
"""
from __future__ import annotations

import math

import numba
from numba import prange

from ._numba_blas import _gemm_lp64
from ._numba_kernels import (backprop_relu_slice, bias_add_row, bias_relu_row, bias_softmax_row, relu_row,
                             sgd_update_slice, softmax_cross_entropy_row, softmax_cross_entropy_sparse_row)
from .blas_library import NO_TRANS, TRANS

#: Columns of a layer's row in ``table``.
W_OFFSET, B_OFFSET, FAN_IN, UNITS, OUT_OFFSET, RELU = range(6)


@numba.njit(nogil=True, inline="always")
def _gemm(gemm, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, one, zero):
    """c = op(a) op(b) (row-major, operands as addresses; ``one``'s type picks sgemm or dgemm)."""
    _gemm_lp64(gemm, trans_a, trans_b, m, n, k, one, a, lda, b, ldb, zero, c, ldc)


@numba.njit(nogil=True, inline="always")
def _sgd(w, g, v, lr, momentum, weight_decay, mode, has_decay, tiny):
    """:func:`._numba_kernels.sgd_update_slice` on one thread's slices, called with ``mode`` and
    ``has_decay`` as constants so that each call site is compiled for its case (a branch-free,
    vectorized loop)."""
    if has_decay:
        if mode == 0:
            sgd_update_slice(w, g, v, lr, momentum, weight_decay, 0, True, tiny)
        elif mode == 1:
            sgd_update_slice(w, g, v, lr, momentum, weight_decay, 1, True, tiny)
        else:
            sgd_update_slice(w, g, v, lr, momentum, weight_decay, 2, True, tiny)
    elif mode == 0:
        sgd_update_slice(w, g, v, lr, momentum, weight_decay, 0, False, tiny)
    elif mode == 1:
        sgd_update_slice(w, g, v, lr, momentum, weight_decay, 1, False, tiny)
    else:
        sgd_update_slice(w, g, v, lr, momentum, weight_decay, 2, False, tiny)


@numba.njit(nogil=True, inline="always")
def _softmax_rows(acts, out, n, bias, has_bias, probs, grad, y, labels, sparse, r0, r1, inv_batch):
    """Rows r0:r1 of the last layer: logits z += b; p = softmax(z); the rows' loss sum and
    grad = (p sum_j y_j - y) / B (sparse: y one-hot at the label), as the layered
    ``bias_activation`` + ``softmax_cross_entropy`` make them."""
    loss = 0.0
    for i in range(r0, r1):
        z, p, g = acts[out + i * n:out + (i + 1) * n], probs[i], grad[out + i * n:out + (i + 1) * n]
        m, s = bias_softmax_row(z, bias, has_bias, p)
        if sparse:
            loss += softmax_cross_entropy_sparse_row(z, m, math.log(s), p, labels[i], g, inv_batch)
        else:
            loss += softmax_cross_entropy_row(z, m, math.log(s), p, y[i], g, inv_batch)
    return loss


@numba.njit(nogil=True, inline="always")
def _sum_rows(dz, out, batch, n, c0, c1, sums):
    """:meth:`Backend.sum_rows` on columns c0:c1 of the (batch, n) block at ``dz[out:]``, rows in
    order: sums = sum_i dz[i, c0:c1]."""
    sums[:] = 0
    for i in range(batch):
        row = dz[out + i * n + c0:out + i * n + c1]
        for j in range(c1 - c0):
            sums[j] += row[j]


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
                losses[t] = _softmax_rows(acts, out, n, bias, b_off >= 0, probs, dz, y, labels, sparse, r0, r1,
                                          inv_batch)
                continue
            for i in range(r0, r1):  # row slices: a loop from a nonzero start does not vectorize
                z = acts[out + i * n:out + (i + 1) * n]
                if b_off >= 0 and relu:
                    bias_relu_row(z, bias, z)
                elif b_off >= 0:
                    bias_add_row(z, bias)
                elif relu:
                    relu_row(z, z)
        for l in range(layers - 1, 0, -1):
            w_off, b_off, k, n, out, relu = table[l]
            below = table[l - 1, OUT_OFFSET]
            _gemm(gemm, NO_TRANS, TRANS, r1 - r0, k, n, d_addr + (out + r0 * n) * item, n, p_addr + w_off * item, n,
                  d_addr + (below + r0 * k) * item, k, one, zero)
            if table[l - 1, RELU]:  # dz_prev = dh * 1[h_prev > 0]
                grad, h = dz[below + r0 * k:below + r1 * k], acts[below + r0 * k:below + r1 * k]
                backprop_relu_slice(grad, h, grad)
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
                _sum_rows(dz, out, batch, n, c0, c1, grads[b_off + c0:b_off + c1])
        for l in range(layers if update else 0):  # the updates, after all of this thread's products
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
