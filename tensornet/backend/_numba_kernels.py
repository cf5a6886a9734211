"""The Numba versions of :class:`~tensornet.backend.base.Backend`'s element-wise operations, for
:class:`~tensornet.backend.numpy_backend.NumpyBackend`, imported when Numba is installed and the
backend first needs one. Each kernel is named after the backend method it implements
(``sgd_update``, ``backprop_relu``, ...; ``bias_activation_relu`` and ``bias_activation_softmax``
are ``bias_activation``'s two fused cases) and tested against that method's reference on random
inputs (``tests/test_backend_numpy.py``).

Why: NumPy runs one single-threaded pass over memory per ufunc, so ``v = m v - lr g; w += v``
is four passes and ``relu(z + b)`` two, each with a Python call. A Numba loop does the whole
expression in one pass, and for large buffers splits it over the cores (``prange``).

Each kernel exists twice, compiled from the same Python function: ``<name>[0]`` parallel
(``prange``: worth it from about ``PARALLEL_MIN`` elements; bias + relu's: serial row jobs on
:func:`._numba_blas.run_jobs`, :mod:`._numba_row_jobs`) and ``<name>[1]`` serial (no thread
wake-up: the small arrays of small models). Both are cached on disk (``cache=True``).

The arithmetic of one element, row or slice lives in ``inline="always"`` helpers
(``sgd_update_slice``, ``adam_update_slice``, ``bias_relu_row``, ``softmax_cross_entropy_row``,
...) that the kernels here and the compiled training step (:mod:`._numba_step`) both call, so
it is written once. It follows the reference's order of operations in the array's own dtype
(scalars passed already cast to it): results match the reference to the last bit or two.
"""
from __future__ import annotations

import math
import os
import types

import numba
import numpy as np
from numba import prange

from . import _numba_threads  # noqa: F401  (chooses Numba's threading layer before any kernel)
from ._numba_row_jobs import bias_activation_relu, bias_relu_row, relu_value

__all__ = ["PARALLEL_MIN", "sgd_update", "rmsprop_update", "adagrad_update", "adadelta_update", "adam_update",
           "adamax_update", "nadam_update", "dropout_mask", "bias_activation_relu", "bias_activation_softmax",
           "backprop_relu", "softmax_cross_entropy", "softmax_cross_entropy_sparse", "count_correct_categorical"]

#: Elements from which a kernel's threaded version runs (``TENSORNET_CPU_PARALLEL_MIN``; 0: always).
PARALLEL_MIN = int(os.environ.get("TENSORNET_CPU_PARALLEL_MIN", 1 << 21))

inline = numba.njit(inline="always")


def _twin(fn, **options):
    """(parallel, serial) dispatchers compiled from ``fn`` (distinct names keep their disk caches apart);
    ``options`` go to ``numba.njit`` (``error_model="numpy"``: x / 0 is inf or NaN as in NumPy,
    not a ZeroDivisionError check per division, which also keeps the loop from vectorizing)."""
    parallel = numba.njit(parallel=True, cache=True, nogil=True, **options)(fn)
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                               fn.__closure__)
    clone.__qualname__, clone.__module__ = fn.__qualname__ + "_serial", fn.__module__
    serial = numba.njit(cache=True, nogil=True, **options)(clone)
    return parallel, serial


def row_blocks(pair, kernel, rows):
    """How many row blocks a kernel of :func:`_twin`'s ``pair`` that sums blocks on their own
    should use: Numba's thread count (at most ``rows``) for the parallel twin, 1 (every row in
    order) for the serial one."""
    return max(1, min(numba.get_num_threads(), rows)) if kernel is pair[0] else 1


# ---------------------------------------------------------------------- SGD
@inline
def sgd_element(w, g, v, lr, momentum, weight_decay, mode, has_decay, tiny):
    """:meth:`Backend.sgd_update` on one weight: ``(w', v')``.

    g' = w wd + g when ``has_decay`` (the reference's order), else g;  step = g' lr;
    mode 0: w' = w - step (v unchanged);  1: v' = v m - step, w' = w + v';
    2 (Nesterov): v' = v m - step, w' = (w - step) + m v'.
    A velocity below ``tiny`` (the smallest normal float) in magnitude is stored as +0."""
    gi = w * weight_decay + g if has_decay else g
    step = gi * lr
    if mode == 0:
        return w - step, v
    vi = v * momentum - step
    if abs(vi) < tiny:
        vi = vi - vi  # +0.0, as the reference's assignment
    if mode == 1:
        return w + vi, vi
    return (w - step) + momentum * vi, vi


@inline
def sgd_update_slice(w, g, v, lr, momentum, weight_decay, mode, has_decay, tiny):
    """:func:`sgd_element` over 1-d slices, serially (``v`` is not written in mode 0)."""
    for i in range(w.shape[0]):
        wi, vi = sgd_element(w[i], g[i], v[i], lr, momentum, weight_decay, mode, has_decay, tiny)
        w[i] = wi
        if mode != 0:
            v[i] = vi


def _sgd_update(w, g, v, lr, momentum, weight_decay, mode, has_decay, tiny):
    """:func:`sgd_element` over the flat buffers (``v`` may be ``w`` in mode 0, never written)."""
    for i in prange(w.shape[0]):
        wi, vi = sgd_element(w[i], g[i], v[i], lr, momentum, weight_decay, mode, has_decay, tiny)
        w[i] = wi
        if mode != 0:
            v[i] = vi


# ---------------------------------------------------------------------- adaptive updates
# These follow base.Backend's NumPy expressions operation by operation (``a * b * c`` is ``(a * b) * c``;
# scalars such as ``1 - rho`` or Adam's alpha are computed on the host and passed cast to the array dtype,
# as NumPy's weak scalars are), so they match the reference bit for bit. No fastmath (no FMA contraction);
# ``np.sqrt`` of a float32 stays float32 (correctly rounded, like NumPy's).
@inline
def _nan_max(a, b):
    """np.maximum for two scalars: NaN when either is NaN."""
    if a != a or a >= b:
        return a
    return b


def _rmsprop_update(w, g, ms, mg, v, lr, rho, one_minus_rho, epsilon, momentum, centered, use_momentum):
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


def _adagrad_update(w, g, acc, lr, epsilon):
    """acc += g g;  w -= (lr g) / sqrt(acc + eps)."""
    for i in prange(w.shape[0]):
        gi = g[i]
        a = acc[i] + gi * gi
        acc[i] = a
        w[i] = w[i] - (lr * gi) / np.sqrt(a + epsilon)


def _adadelta_update(w, g, eg, edx, lr, rho, one_minus_rho, epsilon):
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


@inline
def adam_moments(g, m, v, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2):
    """Adam's moments of one weight: ``(m b1 + (1 - b1) g, v b2 + ((1 - b2) g) g)``."""
    return m * beta_1 + one_minus_beta_1 * g, v * beta_2 + (one_minus_beta_2 * g) * g


@inline
def adam_step(w, m, v, alpha, epsilon):
    """Adam's step of one weight: ``w - (alpha m) / (sqrt(v) + eps)``."""
    return w - (alpha * m) / (np.sqrt(v) + epsilon)


@inline
def adam_update_slice(w, g, m, v, alpha, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon):
    """:func:`adam_moments` and :func:`adam_step` over 1-d slices, serially (no AMSGrad)."""
    for i in range(w.shape[0]):
        m[i], v[i] = adam_moments(g[i], m[i], v[i], beta_1, one_minus_beta_1, beta_2, one_minus_beta_2)
        w[i] = adam_step(w[i], m[i], v[i], alpha, epsilon)


def _adam_update(w, g, m, v, v_max, alpha, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon, amsgrad):
    """m = m b1 + (1 - b1) g;  v = v b2 + ((1 - b2) g) g;  (v_max = max(v_max, v));
    w -= (alpha m) / (sqrt(v) + eps), alpha = lr sqrt(1 - b2^(t+1)) / (1 - b1^(t+1))."""
    for i in prange(w.shape[0]):
        mi, vi = adam_moments(g[i], m[i], v[i], beta_1, one_minus_beta_1, beta_2, one_minus_beta_2)
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = _nan_max(v_max[i], vi)
            v_max[i] = vi
        w[i] = adam_step(w[i], mi, vi, alpha, epsilon)


def _adamax_update(w, g, m, u, lr_corrected, beta_1, one_minus_beta_1, beta_2, epsilon):
    """m = m b1 + (1 - b1) g;  u = max(u b2, |g|);  w -= (c m) / (u + eps), c = lr / (1 - b1^(t+1))."""
    for i in prange(w.shape[0]):
        gi = g[i]
        mi = m[i] * beta_1 + one_minus_beta_1 * gi
        m[i] = mi
        ui = _nan_max(u[i] * beta_2, abs(gi))
        u[i] = ui
        w[i] = w[i] - (lr_corrected * mi) / (ui + epsilon)


def _nadam_update(w, g, m, v, lr, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon, m_coef, g_coef,
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


def _dropout_mask(u, rate, scale, zero):
    """In place over the uniform draws u: mask = scale where u >= rate, else 0."""
    for i in prange(u.shape[0]):
        u[i] = scale if u[i] >= rate else zero


# ---------------------------------------------------------------------- activations
@inline
def relu_row(x, y):
    """:meth:`Backend.relu` on a 1-d row: y = max(x, 0) (``y`` may be ``x``)."""
    zero = x.dtype.type(0)  # an int 0 would make the select a float64 one
    for j in range(x.shape[0]):
        y[j] = relu_value(x[j], zero)


@inline
def bias_add_row(z, b):
    """:meth:`Backend.bias_add` on a 1-d row, in place: z += b."""
    for j in range(z.shape[0]):
        z[j] = z[j] + b[j]


@inline
def relu_grad_value(dy, y, one, zero):
    """dy * 1[y > 0] (a NaN in dy stays NaN where y > 0)."""
    return dy * (one if y > 0 else zero)


@inline
def backprop_relu_slice(dy, y, out):
    """:meth:`Backend.backprop_relu` on 1-d slices, serially: out = dy * 1[y > 0] (``out`` may be ``dy``)."""
    one, zero = dy.dtype.type(1), dy.dtype.type(0)  # int 1 / 0 would make every product a float64 one
    for i in range(dy.shape[0]):
        out[i] = relu_grad_value(dy[i], y[i], one, zero)


def _backprop_relu(dy, y, out):
    """out = dy * 1[y > 0] (flat arrays)."""
    one, zero = dy.dtype.type(1), dy.dtype.type(0)
    for i in prange(dy.shape[0]):
        out[i] = relu_grad_value(dy[i], y[i], one, zero)


@inline
def bias_softmax_row(z, b, has_bias, p):
    """:meth:`Backend.bias_activation` with softmax on a 1-d row: z += b (when ``has_bias``);
    p = exp(z - m) / s with m = max(z) (NaN if z holds one) and s = sum exp(z - m) (exp in the
    row's dtype, s accumulated in float64). Returns (m, s)."""
    m = np.float32(-np.inf)  # takes z's dtype (a float64 start would make every exp a float64 one)
    for j in range(z.shape[0]):
        t = z[j] + b[j] if has_bias else z[j]
        z[j] = t
        if t > m or t != t:
            m = t
    s = 0.0
    for j in range(z.shape[0]):
        e = math.exp(z[j] - m)
        p[j] = e
        s += e
    for j in range(z.shape[0]):
        p[j] = p[j] / s
    return m, s


def _bias_activation_softmax(z, b, y):
    """z += b (rows); y = exp(z - max) / sum(exp(z - max)) per row."""
    for i in prange(z.shape[0]):
        bias_softmax_row(z[i], b, True, y[i])


# ---------------------------------------------------------------------- fused softmax cross-entropy
@inline
def row_max_sum_exp(z):
    """(m, s) of a 1-d row: m = max(z) (NaN if z holds one), s = sum_j exp(z_j - m), exp in z's
    dtype, accumulated in float64."""
    m = np.float32(-np.inf)
    for j in range(z.shape[0]):
        if z[j] > m or z[j] != z[j]:
            m = z[j]
    s = 0.0
    for j in range(z.shape[0]):
        s += math.exp(z[j] - m)
    return m, s


@inline
def softmax_cross_entropy_row(z, m, log_s, p, t, g, inv_n):
    """:meth:`Backend.softmax_cross_entropy` on one row of logits z with softmax p, target t and
    (m, log s) of :func:`row_max_sum_exp`: returns the row's loss -sum_j t_j ((z_j - m) - log s)
    (float64) and writes g = (p sum_j t_j - t) inv_n."""
    ts = t[0] * 0
    loss = 0.0
    for j in range(z.shape[0]):
        ts += t[j]
        loss -= t[j] * ((z[j] - m) - log_s)
    for j in range(z.shape[0]):
        g[j] = (p[j] * ts - t[j]) * inv_n
    return loss


@inline
def softmax_cross_entropy_sparse_row(z, m, log_s, p, label, g, inv_n):
    """The same with an integer label: loss -((z_label - m) - log s); g = (p - onehot(label)) inv_n."""
    for j in range(z.shape[0]):
        g[j] = p[j] * inv_n
    g[label] = (p[label] - 1) * inv_n
    return -((z[label] - m) - log_s)


def _softmax_cross_entropy(z, p, t, grad, inv_n):
    """Loss sum over the rows of :func:`softmax_cross_entropy_row` (float64 accumulator)."""
    total = 0.0
    for i in prange(z.shape[0]):
        m, s = row_max_sum_exp(z[i])
        total += softmax_cross_entropy_row(z[i], m, math.log(s), p[i], t[i], grad[i], inv_n)
    return total


def _softmax_cross_entropy_sparse(z, p, labels, grad, inv_n):
    """Loss sum over the rows of :func:`softmax_cross_entropy_sparse_row`."""
    total = 0.0
    for i in prange(z.shape[0]):
        m, s = row_max_sum_exp(z[i])
        total += softmax_cross_entropy_sparse_row(z[i], m, math.log(s), p[i], labels[i], grad[i], inv_n)
    return total


# ---------------------------------------------------------------------- metrics
@inline
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


def _count_correct_categorical(a, b):
    """:meth:`Backend.count_correct` with kind ``"categorical"``: rows where argmax(a) == argmax(b)
    (first maximum wins, a NaN counts as the maximum)."""
    count = 0
    for i in prange(a.shape[0]):
        if _row_argmax(a, i) == _row_argmax(b, i):
            count += 1
    return count


sgd_update = _twin(_sgd_update)
rmsprop_update = _twin(_rmsprop_update, error_model="numpy")
adagrad_update = _twin(_adagrad_update, error_model="numpy")
adadelta_update = _twin(_adadelta_update, error_model="numpy")
adam_update = _twin(_adam_update, error_model="numpy")
adamax_update = _twin(_adamax_update, error_model="numpy")
nadam_update = _twin(_nadam_update, error_model="numpy")
dropout_mask = _twin(_dropout_mask, error_model="numpy")
bias_activation_softmax = _twin(_bias_activation_softmax)
backprop_relu = _twin(_backprop_relu)
softmax_cross_entropy = _twin(_softmax_cross_entropy)
softmax_cross_entropy_sparse = _twin(_softmax_cross_entropy_sparse)
count_correct_categorical = _twin(_count_correct_categorical)
