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

from .blas_threads import numpy_blas_controller
from .shared_pool import choose_threading_layer

__all__ = ["PARALLEL_MIN", "sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam", "dropout",
           "bias_relu", "relu_backward", "bias_softmax", "softmax_xent_dense", "softmax_xent_sparse",
           "count_argmax_equal", "start_threads", "THREADING_LAYER"]

#: Element count from which the threaded version of a kernel is used
#: (``TENSORNET_CPU_PARALLEL_MIN`` overrides it; 0 disables the serial versions).
PARALLEL_MIN = int(os.environ.get("TENSORNET_CPU_PARALLEL_MIN", 1 << 21))

# Numba's OpenMP layer spins its idle threads: beside OpenBLAS' own spinning threads a 0.4 ms
# update took 16 ms. So it is chosen only where OpenBLAS can run on the same OpenMP threads
# (shared_pool.py); elsewhere the work-queue layer, whose threads sleep. A layer the user chose
# (NUMBA_THREADING_LAYER) is left alone.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = choose_threading_layer(numpy_blas_controller())
#: The threading layer asked for (``numba.threading_layer()`` tells the one loaded, after a launch).
THREADING_LAYER = numba.config.THREADING_LAYER


def _twin(fn, **options):
    """(parallel, serial) dispatchers compiled from ``fn`` (distinct names keep their disk caches apart);
    ``options`` go to ``numba.njit`` (``error_model="numpy"``: x / 0 is inf or NaN as in NumPy,
    not a ZeroDivisionError check per division, which also keeps the loop from vectorizing)."""
    parallel = numba.njit(parallel=True, cache=True, nogil=True, **options)(fn)
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                               fn.__closure__)
    clone.__qualname__ = fn.__qualname__ + "_serial"
    clone.__module__ = fn.__module__
    serial = numba.njit(cache=True, nogil=True, **options)(clone)
    return parallel, serial


def _sgd(w, g, v, lr, momentum, weight_decay, mode, has_decay, tiny):
    """mode 0: w -= lr g';  1: v = m v - lr g', w += v;  2 (Nesterov): w = w - lr g' + m v.
    g' = w wd + g when ``has_decay`` (the reference's order), else g. A velocity entry below
    ``tiny`` (the smallest normal float) in magnitude is stored as 0, as the reference does."""
    for i in prange(w.shape[0]):
        gi = w[i] * weight_decay + g[i] if has_decay else g[i]
        step = gi * lr
        if mode == 0:
            w[i] = w[i] - step
        else:
            vi = v[i] * momentum - step
            if abs(vi) < tiny:
                vi = vi - vi  # +0.0, as the reference's assignment
            v[i] = vi
            if mode == 1:
                w[i] = w[i] + vi
            else:
                w[i] = (w[i] - step) + momentum * vi


# The adaptive updates below follow base.Backend's NumPy expressions operation by operation
# (``a * b * c`` is ``(a * b) * c``; Python-float scalars such as ``1 - rho`` or Adam's alpha
# are computed on the host and passed cast to the array dtype, as NumPy's weak scalars are), so
# they match the reference bit for bit. No fastmath: LLVM then never contracts into an FMA.
# ``np.sqrt`` of a float32 stays float32 (correctly rounded, like NumPy's).


def _nan_max(a, b):
    """np.maximum for two scalars: NaN when either is NaN."""
    if a != a or a >= b:
        return a
    return b


_nan_max = numba.njit(inline="always")(_nan_max)


def _rmsprop(w, g, ms, mg, v, lr, rho, one_minus_rho, epsilon, momentum, centered, use_momentum):
    """ms = ms rho + ((1 - rho) g) g;  mg = mg rho + (1 - rho) g (centered);
    inc = (lr g) / sqrt((ms - mg mg) + eps);  v = v momentum + inc, w -= v  (or w -= inc)."""
    for i in prange(w.shape[0]):
        gi = g[i]
        msi = ms[i] * rho + (one_minus_rho * gi) * gi
        ms[i] = msi
        if centered:
            mgi = mg[i] * rho + one_minus_rho * gi
            mg[i] = mgi
            denom = msi - mgi * mgi
        else:
            denom = msi
        inc = (lr * gi) / np.sqrt(denom + epsilon)
        if use_momentum:
            vi = v[i] * momentum + inc
            v[i] = vi
            w[i] = w[i] - vi
        else:
            w[i] = w[i] - inc


def _adagrad(w, g, acc, lr, epsilon):
    """acc += g g;  w -= (lr g) / sqrt(acc + eps)."""
    for i in prange(w.shape[0]):
        gi = g[i]
        a = acc[i] + gi * gi
        acc[i] = a
        w[i] = w[i] - (lr * gi) / np.sqrt(a + epsilon)


def _adadelta(w, g, eg, edx, lr, rho, one_minus_rho, epsilon):
    """Eg = Eg rho + ((1 - rho) g) g;  d = (sqrt(Edx + eps) / sqrt(Eg + eps)) g;
    Edx = Edx rho + ((1 - rho) d) d;  w -= lr d."""
    for i in prange(w.shape[0]):
        gi = g[i]
        egi = eg[i] * rho + (one_minus_rho * gi) * gi
        eg[i] = egi
        edxi = edx[i]
        d = (np.sqrt(edxi + epsilon) / np.sqrt(egi + epsilon)) * gi
        edx[i] = edxi * rho + (one_minus_rho * d) * d
        w[i] = w[i] - lr * d


def _adam(w, g, m, v, v_max, alpha, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon, amsgrad):
    """m = m b1 + (1 - b1) g;  v = v b2 + ((1 - b2) g) g;  (v_max = max(v_max, v));
    w -= (alpha m) / (sqrt(v) + eps)."""
    for i in prange(w.shape[0]):
        gi = g[i]
        mi = m[i] * beta_1 + one_minus_beta_1 * gi
        m[i] = mi
        vi = v[i] * beta_2 + (one_minus_beta_2 * gi) * gi
        v[i] = vi
        if amsgrad:
            vi = _nan_max(v_max[i], vi)
            v_max[i] = vi
        w[i] = w[i] - (alpha * mi) / (np.sqrt(vi) + epsilon)


def _adamax(w, g, m, u, lr_corrected, beta_1, one_minus_beta_1, beta_2, epsilon):
    """m = m b1 + (1 - b1) g;  u = max(u b2, |g|);  w -= (c m) / (u + eps)."""
    for i in prange(w.shape[0]):
        gi = g[i]
        mi = m[i] * beta_1 + one_minus_beta_1 * gi
        m[i] = mi
        ui = _nan_max(u[i] * beta_2, abs(gi))
        u[i] = ui
        w[i] = w[i] - (lr_corrected * mi) / (ui + epsilon)


def _nadam(w, g, m, v, lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon, m_coef, g_coef,
           v_correction):
    """m, v as Adam;  m_hat = c1 m + c2 g;  v_hat = v / (1 - b2^(t+1));
    w -= (lr m_hat) / (sqrt(v_hat) + eps)."""
    for i in prange(w.shape[0]):
        gi = g[i]
        mi = m[i] * beta_1 + one_minus_beta_1 * gi
        m[i] = mi
        vi = v[i] * beta_2 + (one_minus_beta_2 * gi) * gi
        v[i] = vi
        m_hat = m_coef * mi + g_coef * gi
        w[i] = w[i] - (lr * m_hat) / (np.sqrt(vi / v_correction) + epsilon)


def _dropout(u, rate, scale, zero):
    """In place over the uniform draws: u = scale where u >= rate, else 0."""
    for i in prange(u.shape[0]):
        u[i] = scale if u[i] >= rate else zero


def _bias_relu(z, b, y):
    """z += b (rows); y = max(z, 0) (NaN propagates as in np.maximum)."""
    n, k = z.shape
    zero = z.dtype.type(0)  # an int 0 would make the select a float64 one
    for i in prange(n):
        for j in range(k):
            t = z[i, j] + b[j]
            z[i, j] = t
            y[i, j] = t if (t > 0 or t != t) else zero


def _relu_backward(dy, y, out):
    """out = dy * 1[y > 0] (flat arrays)."""
    one, zero = dy.dtype.type(1), dy.dtype.type(0)  # int 1 / 0 made every product a float64 one
    for i in prange(dy.shape[0]):
        out[i] = dy[i] * (one if y[i] > 0 else zero)


def _bias_softmax(z, b, y):
    """z += b (rows); y = exp(z - max) / sum(exp(z - max)) per row (exp in the array's dtype,
    the sum in float64)."""
    n, k = z.shape
    for i in prange(n):
        m = np.float32(-np.inf)  # takes z's dtype (a float64 start made every exp a float64 one)
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


@numba.njit(cache=True, nogil=True, inline="always")
def _row_max_sum_exp(z, i):
    """(m, s): the maximum of row i of z (NaN if the row holds one) and sum_j exp(z_ij - m),
    exp in z's dtype, accumulated in float64."""
    m = np.float32(-np.inf)  # takes z's dtype (a float64 start made every exp a float64 one)
    for j in range(z.shape[1]):
        if z[i, j] > m or z[i, j] != z[i, j]:
            m = z[i, j]
    s = 0.0
    for j in range(z.shape[1]):
        s += math.exp(z[i, j] - m)
    return m, s


def _softmax_xent_dense(z, p, t, grad, inv_n):
    """Loss sum -sum_ij t_ij (z_ij - max_i - log sum_j exp(z_ij - max_i)) (float64 accumulator);
    grad = (p * sum_j t_ij - t) * inv_n."""
    n, k = z.shape
    total = 0.0
    for i in prange(n):
        m, s = _row_max_sum_exp(z, i)
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
        m, s = _row_max_sum_exp(z, i)
        label = labels[i]
        total -= (z[i, label] - m) - math.log(s)
        for j in range(k):
            grad[i, j] = p[i, j] * inv_n
        grad[i, label] = (p[i, label] - 1) * inv_n
    return total


@numba.njit(cache=True, nogil=True, inline="always")
def _row_argmax(a, i):
    """Index of the first maximum of row i of a; the first NaN counts as the maximum."""
    index = 0
    best = a[i, 0]
    if best == best:
        for j in range(1, a.shape[1]):
            x = a[i, j]
            if x != x:
                return j
            if x > best:
                best, index = x, j
    return index


def _count_argmax_equal(a, b):
    """Rows where argmax(a) == argmax(b) (first maximum wins, a NaN counts as the maximum)."""
    count = 0
    for i in prange(a.shape[0]):
        if _row_argmax(a, i) == _row_argmax(b, i):
            count += 1
    return count


sgd = _twin(_sgd)
rmsprop = _twin(_rmsprop, error_model="numpy")
adagrad = _twin(_adagrad, error_model="numpy")
adadelta = _twin(_adadelta, error_model="numpy")
adam = _twin(_adam, error_model="numpy")
adamax = _twin(_adamax, error_model="numpy")
nadam = _twin(_nadam, error_model="numpy")
dropout = _twin(_dropout, error_model="numpy")
bias_relu = _twin(_bias_relu)
relu_backward = _twin(_relu_backward)
bias_softmax = _twin(_bias_softmax)
softmax_xent_dense = _twin(_softmax_xent_dense)
softmax_xent_sparse = _twin(_softmax_xent_sparse)
count_argmax_equal = _twin(_count_argmax_equal)


def start_threads():
    """Launch Numba's thread pool (loading its threading layer): a one-element parallel kernel."""
    one = np.ones(1, np.float32)
    relu_backward[0](one, one, one)
