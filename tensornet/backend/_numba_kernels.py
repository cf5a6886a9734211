"""Fused CPU kernels for :class:`~tensornet.backend.numpy_backend.NumpyBackend`, compiled by Numba.

Imported only when Numba is installed (``pip install tensornet[fast]``) and the NumPy backend
first needs one of them; every kernel has a pure-NumPy twin in ``numpy_backend.py`` and a test
against :class:`~tensornet.backend.base.Backend`'s reference (``tests/test_backend_numpy.py``).

Why: NumPy runs one single-threaded pass over memory per ufunc, so ``v = m v - lr g; w += v``
is four passes and ``relu(z + b)`` two, each with a Python call. A Numba loop does the whole
expression in one pass, and for large buffers splits it over the cores (``prange``).

Each kernel exists twice, compiled from the same Python function: ``<name>[0]`` parallel
(``prange`` over threads: worth it from about ``PARALLEL_MIN`` elements) and ``<name>[1]``
serial (no thread wake-up: for the small arrays of small models). Both are cached on disk
(``cache=True``), so only the first run on a machine pays the compilation.

The arithmetic follows the reference's order of operations in the array's own dtype (scalars
are passed already cast to it), so the results match the reference to the last bit or two.
"""
from __future__ import annotations

import math
import os
import types

import numba
import numpy as np
from numba import prange

__all__ = ["PARALLEL_MIN", "sgd", "bias_relu", "relu_backward", "bias_softmax", "softmax_xent_dense",
           "softmax_xent_sparse", "count_argmax_equal"]

#: Element count from which the threaded version of a kernel is used
#: (``TENSORNET_CPU_PARALLEL_MIN`` overrides it; 0 disables the serial versions).
PARALLEL_MIN = int(os.environ.get("TENSORNET_CPU_PARALLEL_MIN", 1 << 21))

# Numba's OpenMP layer spins its idle threads: on a machine whose cores are busy (or beside
# BLAS's own threads) a 0.4 ms update then took 16 ms. The work-queue layer sleeps instead.
# A layer the user chose (NUMBA_THREADING_LAYER) is left alone.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"


def _twin(fn):
    """(parallel, serial) dispatchers compiled from ``fn`` (distinct names keep their disk caches apart)."""
    parallel = numba.njit(parallel=True, cache=True, nogil=True)(fn)
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                               fn.__closure__)
    clone.__qualname__ = fn.__qualname__ + "_serial"
    clone.__module__ = fn.__module__
    serial = numba.njit(cache=True, nogil=True)(clone)
    return parallel, serial


def _sgd(w, g, v, lr, momentum, weight_decay, mode, has_decay):
    """mode 0: w -= lr g';  1: v = m v - lr g', w += v;  2 (Nesterov): w = w - lr g' + m v.
    g' = w wd + g when ``has_decay`` (the reference's order), else g."""
    for i in prange(w.shape[0]):
        gi = w[i] * weight_decay + g[i] if has_decay else g[i]
        step = gi * lr
        if mode == 0:
            w[i] = w[i] - step
        else:
            vi = v[i] * momentum - step
            v[i] = vi
            if mode == 1:
                w[i] = w[i] + vi
            else:
                w[i] = (w[i] - step) + momentum * vi


def _bias_relu(z, b, y):
    """z += b (rows); y = max(z, 0) (NaN propagates as in np.maximum)."""
    n, k = z.shape
    for i in prange(n):
        for j in range(k):
            t = z[i, j] + b[j]
            z[i, j] = t
            y[i, j] = t if (t > 0 or t != t) else 0


def _relu_backward(dy, y, out):
    """out = dy * 1[y > 0] (flat arrays)."""
    for i in prange(dy.shape[0]):
        out[i] = dy[i] * (1 if y[i] > 0 else 0)


def _bias_softmax(z, b, y):
    """z += b (rows); y = exp(z - max) / sum(exp(z - max)) per row."""
    n, k = z.shape
    for i in prange(n):
        m = -np.inf
        for j in range(k):
            t = z[i, j] + b[j]
            z[i, j] = t
            if t > m or t != t:
                m = t
        s = 0.0
        for j in range(k):
            e = math.exp(z[i, j] - m)
            y[i, j] = e
            s += e
        for j in range(k):
            y[i, j] = y[i, j] / s


def _softmax_xent_dense(z, p, t, grad, inv_n):
    """Loss sum -sum_ij t_ij (z_ij - max_i - log sum_j exp(z_ij - max_i)) (float64 accumulator);
    grad = (p * sum_j t_ij - t) * inv_n."""
    n, k = z.shape
    total = 0.0
    for i in prange(n):
        m = -np.inf
        for j in range(k):
            if z[i, j] > m or z[i, j] != z[i, j]:
                m = z[i, j]
        s = 0.0
        for j in range(k):
            s += math.exp(z[i, j] - m)
        log_s = math.log(s)
        row = 0.0
        ts = t[i, 0] * 0
        for j in range(k):
            ts += t[i, j]
            row -= t[i, j] * ((z[i, j] - m) - log_s)
        total += row
        for j in range(k):
            grad[i, j] = (p[i, j] * ts - t[i, j]) * inv_n
    return total


def _softmax_xent_sparse(z, p, labels, grad, inv_n):
    """The same with integer labels: loss -sum_i log_softmax(z)_i,label; grad = (p - onehot) * inv_n."""
    n, k = z.shape
    total = 0.0
    for i in prange(n):
        m = -np.inf
        for j in range(k):
            if z[i, j] > m or z[i, j] != z[i, j]:
                m = z[i, j]
        s = 0.0
        for j in range(k):
            s += math.exp(z[i, j] - m)
        label = labels[i]
        total -= (z[i, label] - m) - math.log(s)
        for j in range(k):
            grad[i, j] = p[i, j] * inv_n
        grad[i, label] = (p[i, label] - 1) * inv_n
    return total


def _count_argmax_equal(a, b):
    """Rows where argmax(a) == argmax(b) (first maximum wins, a NaN counts as the maximum)."""
    n, k = a.shape
    count = 0
    for i in prange(n):
        ia = 0
        best = a[i, 0]
        if best == best:
            for j in range(1, k):
                x = a[i, j]
                if x != x:
                    ia = j
                    break
                if x > best:
                    best, ia = x, j
        ib = 0
        best_b = b[i, 0]
        if best_b == best_b:
            for j in range(1, k):
                x = b[i, j]
                if x != x:
                    ib = j
                    break
                if x > best_b:
                    best_b, ib = x, j
        if ia == ib:
            count += 1
    return count


sgd = _twin(_sgd)
bias_relu = _twin(_bias_relu)
relu_backward = _twin(_relu_backward)
bias_softmax = _twin(_bias_softmax)
softmax_xent_dense = _twin(_softmax_xent_dense)
softmax_xent_sparse = _twin(_softmax_xent_sparse)
count_argmax_equal = _twin(_count_argmax_equal)
