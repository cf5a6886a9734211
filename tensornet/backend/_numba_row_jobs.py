"""``bias_activation_relu``, the fused bias + relu of :mod:`._numba_kernels` (which exports
it): serial, and threaded as a serial job per thread on :func:`._numba_blas.run_jobs`, the
parallel loop the compiled training step (:mod:`._numba_step`) already runs its two jobs on.

Why: a ``parallel=True`` kernel compiles Numba's parallel passes of its own (~0.8 s on the
2-core machine, on the first ``fit``'s validation and ``evaluate``, which the compiled step
does not cover); a serial C callback over rows compiles in a fraction of that, and
``run_jobs`` is compiled once for every caller (``python bench/first_run.py`` measures a first
``fit``).

Thread t of ``threads`` takes rows r0:r1 = B t / threads : B (t + 1) / threads of the (B, n)
``z`` and makes z[i] += b; y[i] = max(z[i], 0) (NaN kept) with the layered kernel's own row
helper (``bias_relu_row``, defined here and exported by :mod:`._numba_kernels` with
``relu_value`` for the other relu kernels and the compiled step), so both twins give the same bits.
"""
from __future__ import annotations

import types as pytypes

import numba
import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.extending import intrinsic

from . import _numba_threads  # noqa: F401  (chooses Numba's threading layer before any kernel)

#: Slots of the job's int64 argument block.
Z, BIAS, Y, ROWS, COLS = range(5)

#: The rows' scalar type: :func:`_job` compiles a copy per dtype with ``DTYPE`` bound to it.
DTYPE = np.float32

#: A job's C signature, as ``run_jobs`` calls it: ``void job(int t, char *args, int threads)``.
JOB = types.void(types.int32, types.voidptr, types.int32)

inline = numba.njit(inline="always")


@inline
def relu_value(t, zero):
    """max(t, 0) with a NaN kept (as np.maximum)."""
    return t if (t > 0 or t != t) else zero


@inline
def bias_relu_row(z, b, y):
    """:meth:`Backend.bias_activation` with relu on a 1-d row: z += b; y = max(z, 0), NaN kept
    (``y`` may be ``z``)."""
    zero = z.dtype.type(0)
    for j in range(z.shape[0]):
        t = z[j] + b[j]
        z[j] = t
        y[j] = relu_value(t, zero)


@intrinsic
def _pointer(typingctx, address):
    """The int64 ``address`` as a ``void *``."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(address), codegen


def bias_relu_rows(t, data, threads):
    """Rows r0:r1 of thread ``t``: z[i] += b; y[i] = max(z[i], 0) (arrays of type ``DTYPE``)."""
    args = carray(data, (5,), np.int64)
    rows, cols = args[ROWS], args[COLS]
    z = carray(_pointer(args[Z]), (rows * cols,), DTYPE)  # 1-d, as the compiled step's arrays: one carray type
    b = carray(_pointer(args[BIAS]), (cols,), DTYPE)
    y = carray(_pointer(args[Y]), (rows * cols,), DTYPE)
    for i in range((rows * t) // threads, (rows * (t + 1)) // threads):
        bias_relu_row(z[i * cols:(i + 1) * cols], b, y[i * cols:(i + 1) * cols])


_JOBS = {}


def _job(dtype):
    """The address of :func:`bias_relu_rows` for ``dtype``, compiled (or read from the disk
    cache) as a C callback on the first call for that dtype (a distinct name per dtype keeps
    their disk caches apart)."""
    name = np.dtype(dtype).name
    if name not in _JOBS:
        fn = bias_relu_rows
        clone = pytypes.FunctionType(fn.__code__, dict(fn.__globals__, DTYPE=np.dtype(name).type),
                                     f"{fn.__name__}_{name}", fn.__defaults__, fn.__closure__)
        clone.__qualname__, clone.__module__ = f"{fn.__qualname__}_{name}", fn.__module__
        job = numba.cfunc(JOB, nopython=True, nogil=True, cache=True)(clone)
        _JOBS[name] = (job, job.address)
    return _JOBS[name][1]


def bias_activation_relu_threaded(z, b, y):
    """z += b (rows); y = max(z, 0) (NaN propagates as in np.maximum), rows split over Numba's
    threads. ``z``, ``b`` and ``y`` are C-contiguous, of one float dtype, z and y (B, n)."""
    from ._numba_blas import run_jobs  # compiles (or loads) the shared loop on first use

    args = np.array([z.ctypes.data, b.ctypes.data, y.ctypes.data, z.shape[0], z.shape[1]], np.int64)
    threads = np.int32(min(numba.get_num_threads(), max(z.shape[0], 1)))
    run_jobs(np.uint64(_job(z.dtype)), threads, np.uint64(0), np.uint64(args.ctypes.data), threads)


@numba.njit(cache=True, nogil=True)
def _bias_activation_relu_serial(z, b, y):
    """z += b (rows); y = max(z, 0) (NaN propagates as in np.maximum)."""
    for i in range(z.shape[0]):
        bias_relu_row(z[i], b, y[i])


#: (threaded, serial), as every kernel pair of :mod:`._numba_kernels`.
bias_activation_relu = (bias_activation_relu_threaded, _bias_activation_relu_serial)
