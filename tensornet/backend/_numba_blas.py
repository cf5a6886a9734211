"""Numba code that calls into NumPy's OpenBLAS or MKL by address (see :mod:`.shared_pool` and
:mod:`.mkl_blas` for why and when it is used).

- :data:`callback`: OpenBLAS's threading callback. OpenBLAS (0.3.28 and later) calls, instead
  of waking its own threads, ``callback(sync, dojob, numjobs, jobdata_elsize, jobdata,
  dojob_data)`` and expects job ``i`` -- ``dojob(i, jobdata + i * jobdata_elsize, dojob_data)``
  -- done for every ``i < numjobs`` on return. The jobs of a threaded product busy-wait on each
  other, so they must all run *at once*: :func:`run_jobs` gives each its own thread of Numba's
  pool (one ``prange`` iteration per thread, which holds while ``numjobs`` is at most Numba's
  thread count; the caller keeps OpenBLAS's thread count within it).
- :func:`one_product_lp64`: one product through MKL's ``cblas_?gemm`` (it threads itself on
  the pool's OpenMP threads).
- :func:`two_products_ilp64` / :func:`two_products_lp64`: two independent products at once,
  each ``cblas_?gemm`` on one thread of the pool (OpenBLAS set to one thread by the caller).
  The caller runs products side by side only where that beats running them one after the
  other on every thread (``MKL_SIDE_BY_SIDE_MACS`` in :mod:`.blas_threads`).

Addresses travel as integers (the same registers as pointers), so the compiled code can be
cached on disk: nothing process-specific is baked into it.
"""
from __future__ import annotations

import numba
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from ._numba_threads import start_threads
from .blas_library import ROW_MAJOR

# The cfunc below is built (or loaded from the disk cache) as this module is imported, and its
# code calls a parallel function: Numba's threading layer must be loaded first.
start_threads()


def _int(builder, value, bits):
    """``value`` (an LLVM integer) sign-extended or truncated to ``bits``."""
    width = value.type.width
    if width > bits:
        return builder.trunc(value, ir.IntType(bits))
    return builder.sext(value, ir.IntType(bits)) if width < bits else value


@intrinsic
def _call_job(typingctx, dojob, index, data, dojob_data):
    """``((void (*)(int, char *, int)) dojob)(index, (char *) data, dojob_data)``."""
    sig = types.void(dojob, index, data, dojob_data)

    def codegen(context, builder, signature, args):
        fn_addr, i, data_addr, arg = args
        char_p = ir.IntType(8).as_pointer()
        fn_type = ir.FunctionType(ir.VoidType(), [ir.IntType(32), char_p, ir.IntType(32)])
        fn = builder.inttoptr(fn_addr, fn_type.as_pointer())
        builder.call(fn, [_int(builder, i, 32), builder.inttoptr(data_addr, char_p), _int(builder, arg, 32)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(parallel=True, nogil=True, cache=True)
def run_jobs(dojob, numjobs, jobdata_elsize, jobdata, dojob_data):
    """Job i on thread i, all at once."""
    for i in prange(numjobs):
        _call_job(dojob, i, jobdata + i * jobdata_elsize, dojob_data)


@numba.cfunc(types.void(types.int32, types.uintp, types.int32, types.uintp, types.uintp, types.int32),
             nopython=True, cache=True)
def callback(sync, dojob, numjobs, jobdata_elsize, jobdata, dojob_data):
    """OpenBLAS's ``openblas_threads_callback`` (pointers passed as integers)."""
    if numjobs == 1:
        _call_job(dojob, 0, jobdata, dojob_data)
    elif numjobs > 1:
        run_jobs(dojob, numjobs, jobdata_elsize, jobdata, dojob_data)


def _gemm_caller(int_bits):
    """An intrinsic calling ``cblas_?gemm`` at an address, row-major, with ``int_bits``-bit
    sizes (64 for OpenBLAS' ILP64 builds such as NumPy's, 32 otherwise); the float type of
    ``alpha`` picks sgemm's or dgemm's signature."""

    @intrinsic
    def call_gemm(typingctx, gemm, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        sig = types.void(gemm, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

        def codegen(context, builder, signature, args):
            gemm, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc = args
            int32, size = ir.IntType(32), ir.IntType(int_bits)
            real_p = alpha.type.as_pointer()
            fn_type = ir.FunctionType(ir.VoidType(), [int32, int32, int32, size, size, size, alpha.type, real_p,
                                                      size, real_p, size, alpha.type, real_p, size])
            fn = builder.inttoptr(gemm, fn_type.as_pointer())

            def sz(value):
                return _int(builder, value, int_bits)

            builder.call(fn, [ir.Constant(int32, ROW_MAJOR), _int(builder, trans_a, 32), _int(builder, trans_b, 32),
                              sz(m), sz(n), sz(k), alpha, builder.inttoptr(a, real_p), sz(lda),
                              builder.inttoptr(b, real_p), sz(ldb), beta, builder.inttoptr(c, real_p), sz(ldc)])
            return context.get_dummy_value()

        return sig, codegen

    return call_gemm


_gemm_ilp64 = _gemm_caller(64)
_gemm_lp64 = _gemm_caller(32)


@numba.njit(parallel=True, nogil=True, cache=True)
def two_products_ilp64(gemm, p, one, zero):
    """Product t (a row of ``p``: trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc) on thread t:
    ``c = op(a) op(b)``."""
    for t in prange(2):
        _gemm_ilp64(gemm, p[t, 0], p[t, 1], p[t, 2], p[t, 3], p[t, 4], one, p[t, 5], p[t, 6], p[t, 7], p[t, 8],
                    zero, p[t, 9], p[t, 10])


@numba.njit(parallel=True, nogil=True, cache=True)
def two_products_lp64(gemm, p, one, zero):
    """:func:`two_products_ilp64` for an OpenBLAS with 32-bit sizes."""
    for t in prange(2):
        _gemm_lp64(gemm, p[t, 0], p[t, 1], p[t, 2], p[t, 3], p[t, 4], one, p[t, 5], p[t, 6], p[t, 7], p[t, 8],
                   zero, p[t, 9], p[t, 10])


@numba.njit(nogil=True, cache=True)
def one_product_lp64(gemm, trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, one, zero):
    """``c = op(a) op(b)`` through the ``cblas_?gemm`` at ``gemm`` (32-bit sizes) on the arrays
    in place: one call into compiled code, without ctypes' conversion of each argument."""
    _gemm_lp64(gemm, trans_a, trans_b, m, n, k, one, a.ctypes.data, lda, b.ctypes.data, ldb, zero, c.ctypes.data,
               ldc)

