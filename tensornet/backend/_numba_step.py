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
   OpenMP parallel region); the element-wise work follows it on the rows just written
   (:func:`rows_pass`).
2. Thread t then makes rows k_t of every weight gradient (``dW[k_t] = h_prev[:, k_t]^T dz``) and
   columns c_t of every bias gradient (``db = sum_rows(dz)``, rows in order), and applies the
   SGD update to exactly the weights and biases whose gradients it made (:func:`weights_pass`).

How it runs, and why so: each part is a C callback (``numba.cfunc``) ``job(t, args, threads)``
that reads its arrays from an int64 block of addresses and sizes (:data:`ARGS` names its slots),
and :func:`._numba_blas.run_jobs` -- the parallel loop OpenBLAS's jobs run on, compiled once
for every caller -- runs job t on thread t of Numba's pool. The callbacks are serial code,
compiled on first use for what the model uses (dtype; integer labels or one-hot targets; SGD
or Adam: :func:`callbacks`) and cached on disk. A single ``parallel=True``
function holding the whole step took ~14 s to compile on the 2-core machine (Numba's parallel
passes and LLVM over the inlined step, once per parallel loop and once more for the function);
the two serial parts take ~3 s (``python bench/first_run.py`` measures a first ``fit``).

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
import os
import subprocess
import sys
import types as pytypes

import numba
import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.core import sigutils
from numba.core.ccallback import CFunc
from numba.extending import intrinsic

from ._numba_blas import _gemm_lp64, one_product_lp64, run_jobs
from ._numba_kernels import (adam_update_slice, backprop_relu_slice, bias_add_row, bias_relu_row, bias_softmax_row,
                             relu_row, sgd_update_slice, softmax_cross_entropy_row, softmax_cross_entropy_sparse_row)
from .blas_library import NO_TRANS, TRANS

#: Columns of a layer's row in ``table``.
W_OFFSET, B_OFFSET, FAN_IN, UNITS, OUT_OFFSET, RELU = range(6)

#: Slots of a job's int64 argument block: the addresses of the arrays (``FLOATS``: a float64
#: block, :data:`FLOAT_SLOTS`), then sizes and switches. ``RULE`` is the update: 0, 1, 2 the
#: ``sgd`` kernel's modes (plain, momentum, Nesterov: ``VELOCITY``), 3 Adam (``M``, ``V``).
ARGS = ("GEMM", "X", "Y", "LABELS", "PARAMS", "GRADS", "VELOCITY", "M", "V", "TABLE", "ACTS", "DZ", "PROBS",
        "LOSSES", "FLOATS", "BATCH", "FAN_IN0", "Y_ROWS", "Y_COLS", "LABEL_COUNT", "LAYERS", "PARAM_SIZE",
        "STATE_SIZE", "ACT_SIZE", "SPARSE", "RULE", "HAS_DECAY", "UPDATE")
(GEMM, X, Y, LABELS, PARAMS, GRADS, VELOCITY, M, V, TABLE, ACTS, DZ, PROBS, LOSSES, FLOATS, BATCH, FAN_IN0, Y_ROWS,
 Y_COLS, LABEL_COUNT, LAYERS, PARAM_SIZE, STATE_SIZE, ACT_SIZE, SPARSE, RULE, HAS_DECAY, UPDATE) = range(len(ARGS))
#: Slots of the float64 block: SGD's scalars, then Adam's (``ALPHA`` = lr sqrt(1 - b2^(t+1)) / (1 - b1^(t+1))).
FLOAT_SLOTS = ("LR", "MOMENTUM", "WEIGHT_DECAY", "TINY", "ALPHA", "BETA_1", "ONE_MINUS_BETA_1", "BETA_2",
               "ONE_MINUS_BETA_2", "EPSILON")
LR, MOMENTUM, WEIGHT_DECAY, TINY, ALPHA, BETA_1, ONE_MINUS_BETA_1, BETA_2, ONE_MINUS_BETA_2, EPSILON = \
    range(len(FLOAT_SLOTS))
#: ``RULE`` of Adam.
ADAM = 3

#: The compile-time constants of :func:`rows_pass` and :func:`weights_pass`: :func:`jobs`
#: compiles a copy of each per value they take, bound in the copy's globals -- ``DTYPE`` the
#: parameters' scalar type (both), ``SPARSE_TARGETS`` integer labels rather than (B, n) targets
#: (:func:`rows_pass`), ``ADAM_UPDATE`` Adam's update rather than SGD's (:func:`weights_pass`).
#: Numba prunes a branch on a global constant before typing it, so a copy compiles only the
#: code its model runs.
DTYPE = np.float32
SPARSE_TARGETS = True
ADAM_UPDATE = False

#: How :func:`callbacks` compiles its two jobs with an empty disk cache (``TENSORNET_STEP_COMPILE``):
#: ``parallel`` side by side (a child process compiles one), ``serial`` one after the other,
#: ``auto`` (the default) side by side while the 1-minute load average is below the core count:
#: where the cores are already busy, the child's start-up only adds to the load. (2 cores,
#: ``bench/first_run.py``: at load 1.0 side by side saves about 1.8 s; at load 5-7 it costs.)
COMPILE_MODE = os.environ.get("TENSORNET_STEP_COMPILE", "auto").lower()
#: How long :func:`callbacks` waits for the child before compiling the job itself (seconds).
CHILD_TIMEOUT_S = 600


def _side_by_side():
    """Whether :func:`callbacks` compiles its two jobs side by side (:data:`COMPILE_MODE`)."""
    cores = os.cpu_count() or 1
    if COMPILE_MODE == "serial" or cores < 2 or getattr(sys, "frozen", False):  # frozen: no interpreter to start
        return False
    if COMPILE_MODE == "parallel":
        return True
    try:
        return os.getloadavg()[0] < cores
    except (AttributeError, OSError):  # no load average (Windows): assume the machine is idle
        return True


#: A job's C signature, as :func:`._numba_blas.run_jobs` calls it: ``void job(int t, char *args, int threads)``.
JOB = types.void(types.int32, types.voidptr, types.int32)


@numba.njit(nogil=True, inline="always")
def _gemm(gemm, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, one, zero):
    """c = op(a) op(b) (row-major, operands as addresses; ``one``'s type picks sgemm or dgemm)."""
    _gemm_lp64(gemm, trans_a, trans_b, m, n, k, one, a, lda, b, ldb, zero, c, ldc)


@numba.njit(nogil=True, inline="always")
def _softmax_rows(acts, out, n, bias, has_bias, probs, grad, y, r0, r1, inv_batch):
    """Rows r0:r1 of the last layer: logits z += b; p = softmax(z); the rows' loss sum and
    grad = (p sum_j y_j - y) / B, as the layered ``bias_activation`` + ``softmax_cross_entropy``
    make them."""
    loss = 0.0
    for i in range(r0, r1):
        z, p, g = acts[out + i * n:out + (i + 1) * n], probs[i * n:(i + 1) * n], grad[out + i * n:out + (i + 1) * n]
        m, s = bias_softmax_row(z, bias, has_bias, p)
        loss += softmax_cross_entropy_row(z, m, math.log(s), p, y[i * n:(i + 1) * n], g, inv_batch)
    return loss


@numba.njit(nogil=True, inline="always")
def _softmax_rows_sparse(acts, out, n, bias, has_bias, probs, grad, labels, r0, r1, inv_batch):
    """:func:`_softmax_rows` with the targets one-hot at ``labels``: grad = (p - onehot) / B
    (``softmax_cross_entropy_sparse``)."""
    loss = 0.0
    for i in range(r0, r1):
        z, p, g = acts[out + i * n:out + (i + 1) * n], probs[i * n:(i + 1) * n], grad[out + i * n:out + (i + 1) * n]
        m, s = bias_softmax_row(z, bias, has_bias, p)
        loss += softmax_cross_entropy_sparse_row(z, m, math.log(s), p, labels[i], g, inv_batch)
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


@intrinsic
def _pointer(typingctx, address):
    """The int64 ``address`` as a ``void *``."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(address), codegen


def rows_pass(t, data, threads):
    """Part 1 of the step for thread ``t`` of ``threads`` (parameters of type ``DTYPE``, arrays
    named by the argument block at ``data``): rows r0:r1 of the batch forward through every
    layer and back through every input gradient; the rows' loss sum into ``losses[t]``."""
    args = carray(data, (len(ARGS),), np.int64)
    batch, layers, n_last, gemm = args[BATCH], args[LAYERS], args[Y_COLS], args[GEMM]
    table = carray(_pointer(args[TABLE]), (layers * 6,), np.int64)  # 1-d arrays only: one carray type each
    params = carray(_pointer(args[PARAMS]), (args[PARAM_SIZE],), DTYPE)
    acts = carray(_pointer(args[ACTS]), (args[ACT_SIZE],), DTYPE)
    dz = carray(_pointer(args[DZ]), (args[ACT_SIZE],), DTYPE)
    probs = carray(_pointer(args[PROBS]), (batch * n_last,), DTYPE)
    y = carray(_pointer(args[Y]), (args[Y_ROWS] * n_last,), DTYPE)
    labels = carray(_pointer(args[LABELS]), (args[LABEL_COUNT],), np.int64)
    item = params.itemsize
    one, zero = DTYPE(1), DTYPE(0)
    inv_batch = DTYPE(1.0 / batch)
    x_addr, p_addr, a_addr, d_addr = args[X], args[PARAMS], args[ACTS], args[DZ]
    r0, r1 = (batch * t) // threads, (batch * (t + 1)) // threads
    loss = 0.0
    if r1 > r0:
        for l in range(layers):
            w_off, b_off, k, n, out, relu = table[6 * l:6 * l + 6]
            src = x_addr + r0 * k * item if l == 0 else a_addr + (table[6 * l - 6 + OUT_OFFSET] + r0 * k) * item
            _gemm(gemm, NO_TRANS, NO_TRANS, r1 - r0, n, k, src, k, p_addr + w_off * item, n,
                  a_addr + (out + r0 * n) * item, n, one, zero)
            b0 = b_off if b_off > 0 else 0
            bias = params[b0:b0 + n]
            if l == layers - 1:
                if SPARSE_TARGETS:  # a compile-time constant: the other branch is never compiled
                    loss = _softmax_rows_sparse(acts, out, n, bias, b_off >= 0, probs, dz, labels, r0, r1, inv_batch)
                else:
                    loss = _softmax_rows(acts, out, n, bias, b_off >= 0, probs, dz, y, r0, r1, inv_batch)
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
            w_off, b_off, k, n, out, relu = table[6 * l:6 * l + 6]
            below = table[6 * l - 6 + OUT_OFFSET]
            _gemm(gemm, NO_TRANS, TRANS, r1 - r0, k, n, d_addr + (out + r0 * n) * item, n, p_addr + w_off * item, n,
                  d_addr + (below + r0 * k) * item, k, one, zero)
            if table[6 * l - 6 + RELU]:  # dz_prev = dh * 1[h_prev > 0]
                grad, h = dz[below + r0 * k:below + r1 * k], acts[below + r0 * k:below + r1 * k]
                backprop_relu_slice(grad, h, grad)
    carray(_pointer(args[LOSSES]), (np.int64(threads),), np.float64)[t] = loss  # int64: weights_pass's carray type


def weights_pass(t, data, threads):
    """Part 2 of the step for thread ``t`` of ``threads``: rows k0:k1 of every weight gradient,
    columns c0:c1 of every bias gradient, then (``UPDATE``) the update (``RULE``: SGD or Adam) of
    exactly those, its scalars cast to ``DTYPE``."""
    args = carray(data, (len(ARGS),), np.int64)
    batch, layers, gemm = args[BATCH], args[LAYERS], args[GEMM]
    table = carray(_pointer(args[TABLE]), (layers * 6,), np.int64)
    params = carray(_pointer(args[PARAMS]), (args[PARAM_SIZE],), DTYPE)
    grads = carray(_pointer(args[GRADS]), (args[PARAM_SIZE],), DTYPE)
    velocity = carray(_pointer(args[VELOCITY]), (args[STATE_SIZE],), DTYPE)
    m = carray(_pointer(args[M]), (args[STATE_SIZE],), DTYPE)
    v = carray(_pointer(args[V]), (args[STATE_SIZE],), DTYPE)
    dz = carray(_pointer(args[DZ]), (args[ACT_SIZE],), DTYPE)
    f = carray(_pointer(args[FLOATS]), (len(FLOAT_SLOTS),), np.float64)
    lr, momentum, weight_decay, tiny = DTYPE(f[LR]), DTYPE(f[MOMENTUM]), DTYPE(f[WEIGHT_DECAY]), DTYPE(f[TINY])
    alpha, beta_1, one_minus_beta_1 = DTYPE(f[ALPHA]), DTYPE(f[BETA_1]), DTYPE(f[ONE_MINUS_BETA_1])
    beta_2, one_minus_beta_2, epsilon = DTYPE(f[BETA_2]), DTYPE(f[ONE_MINUS_BETA_2]), DTYPE(f[EPSILON])
    rule, has_decay = args[RULE], args[HAS_DECAY] != 0
    item = params.itemsize
    one, zero = DTYPE(1), DTYPE(0)
    x_addr, g_addr, a_addr, d_addr = args[X], args[GRADS], args[ACTS], args[DZ]
    for l in range(layers):
        w_off, b_off, k, n, out, relu = table[6 * l:6 * l + 6]
        k0, k1 = (k * t) // threads, (k * (t + 1)) // threads
        src = x_addr + k0 * item if l == 0 else a_addr + (table[6 * l - 6 + OUT_OFFSET] + k0) * item
        if k1 > k0:
            _gemm(gemm, TRANS, NO_TRANS, k1 - k0, n, batch, src, k, d_addr + out * item, n,
                  g_addr + (w_off + k0 * n) * item, n, one, zero)
        c0, c1 = (n * t) // threads, (n * (t + 1)) // threads
        if b_off >= 0 and c1 > c0:
            _sum_rows(dz, out, batch, n, c0, c1, grads[b_off + c0:b_off + c1])
    for l in range(layers if args[UPDATE] else 0):  # the updates, after all of this thread's products
        w_off, b_off, k, n, out, relu = table[6 * l:6 * l + 6]
        k0, k1 = (k * t) // threads, (k * (t + 1)) // threads
        c0, c1 = (n * t) // threads, (n * (t + 1)) // threads
        for lo, hi in ((w_off + k0 * n, w_off + k1 * n), (b_off + c0, b_off + c1 if b_off >= 0 else b_off + c0)):
            if hi <= lo:
                continue
            if ADAM_UPDATE:  # a compile-time constant: the other update is never compiled
                adam_update_slice(params[lo:hi], grads[lo:hi], m[lo:hi], v[lo:hi], alpha, beta_1, one_minus_beta_1,
                                  beta_2, one_minus_beta_2, epsilon)
            else:
                sgd_update_slice(params[lo:hi], grads[lo:hi], velocity[lo:hi], lr, momentum, weight_decay, rule,
                                 has_decay, tiny)


_JOBS = {}

#: The passes :func:`callbacks` compiles, by name.
_PASSES = {"rows_pass": (rows_pass, {}, "SPARSE_TARGETS", ("dense", "sparse")),
           "weights_pass": (weights_pass, {"error_model": "numpy"}, "ADAM_UPDATE", ("sgd", "adam"))}


def _callback(name, dtype, flag):
    """The pass ``name`` for parameters of ``dtype`` with its switch (``SPARSE_TARGETS`` or
    ``ADAM_UPDATE``) set to ``flag``, as an uncompiled C callback :data:`JOB` with the disk cache
    on: a copy of the function with ``DTYPE`` and the switch bound in its globals, under a
    distinct name, which keeps the copies' disk caches apart."""
    fn, options, switch, words = _PASSES[name]
    suffix = f"{np.dtype(dtype).name}_{words[bool(flag)]}"
    constants = {"DTYPE": np.dtype(dtype).type, switch: bool(flag)}
    clone = pytypes.FunctionType(fn.__code__, dict(fn.__globals__, **constants), f"{name}_{suffix}", fn.__defaults__,
                                 fn.__closure__)
    clone.__qualname__, clone.__module__ = f"{fn.__qualname__}_{suffix}", fn.__module__
    job = CFunc(clone, sigutils.normalize_signature(JOB), locals={}, options=dict(nopython=True, nogil=True, **options))
    job.enable_caching()
    return job


def _cached(job):
    """Whether Numba's disk cache holds ``job`` (then ``job.compile()`` only loads it)."""
    return job._cache.load_overload(job._sig, job._targetdescr.target_context) is not None


def compile_forward(dtype):
    """Compile (or read from the disk cache) the kernels for ``dtype`` that a first ``fit``'s
    validation and ``evaluate`` run outside the step: the serial ``z += b; p = softmax(z)``
    (:data:`._numba_kernels.bias_activation_softmax`) and the bias + relu row job
    (:mod:`._numba_row_jobs`), on 2 x 3 zeros, and MKL's one product on C-contiguous matrices
    (:func:`._numba_blas.one_product_lp64`)."""
    from . import _numba_kernels, _numba_row_jobs

    z, b, p = np.zeros((2, 3), dtype), np.zeros(3, dtype), np.zeros((2, 3), dtype)
    _numba_row_jobs._job(z.dtype)  # the hidden layers' kernel first: validation runs it first
    _numba_kernels.bias_activation_softmax[1](z, b, p)
    real = numba.from_dtype(z.dtype)
    one_product_lp64.compile((types.int64,) * 6 + (types.Array(real, 2, "C"), types.int64) * 3 + (real, real))


def _compile_elsewhere(name, dtype, flag):
    """A child process that compiles :func:`_callback` ``(name, dtype, flag)`` into the disk cache
    (this interpreter, this ``sys.path``); None where it cannot start."""
    code = ("import sys; from tensornet.backend import _numba_step as s; "
            "s._callback(sys.argv[1], sys.argv[2], sys.argv[3] == '1').compile()")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    try:
        return subprocess.Popen([sys.executable, "-c", code, name, np.dtype(dtype).name, str(int(flag))], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def callbacks(dtype, sparse=True, adam=False, while_waiting=None):
    """The two jobs (``numba.cfunc`` objects) for parameters of ``dtype`` (float32 or float64),
    integer labels (``sparse``) or (B, n) targets, and Adam's (``adam``) or SGD's update:
    :func:`rows_pass` and :func:`weights_pass` compiled for them, or read from the disk cache.
    The update's divisions follow NumPy's error model (x / 0 = inf), as the layered update
    kernels do.

    Numba compiles holding the GIL, so a thread cannot compile beside this one: where neither
    job is in the disk cache and a core is free (:func:`_side_by_side`), a child process compiles
    :func:`weights_pass` into the cache while this one compiles :func:`rows_pass`, then this one
    reads it from there (or compiles it, should the child fail). Should the child still be at
    work once :func:`rows_pass` is done, this one runs ``while_waiting()`` meanwhile (default:
    :func:`compile_forward` ``(dtype)``, what validation needs next). The child compiles nothing
    more: on two cores a compile beside the training only slows it (``python bench/first_run.py``)."""
    keys = (("rows_pass", np.dtype(dtype).name, bool(sparse)), ("weights_pass", np.dtype(dtype).name, bool(adam)))
    todo = {key: _callback(*key) for key in keys if key not in _JOBS}
    missing = [key for key, job in todo.items() if not _cached(job)]
    child = None
    if len(missing) == 2 and _side_by_side():
        child = _compile_elsewhere(*missing[1])
    for key, job in todo.items():
        if child is not None and key == missing[1]:
            if child.poll() is None:
                (while_waiting or (lambda: compile_forward(dtype)))()
            try:
                child.wait(timeout=CHILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # compile it here instead
                child.kill()
                child.wait()
        job.compile()
        _JOBS[key] = job
    return tuple(_JOBS[key] for key in keys)


#: :func:`jobs`' answers, by (dtype, sparse, adam): a step asks for them on every batch.
_ADDRESSES = {}


def jobs(dtype, sparse=True, adam=False, while_waiting=None):
    """The addresses of :func:`callbacks`' two jobs (looked up there once per kind of step)."""
    key = (np.dtype(dtype), bool(sparse), bool(adam))
    if key not in _ADDRESSES:
        _ADDRESSES[key] = tuple(job.address for job in callbacks(dtype, sparse, adam, while_waiting))
    return _ADDRESSES[key]
