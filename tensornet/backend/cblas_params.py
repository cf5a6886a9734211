"""The CBLAS arguments under which BLAS reads NumPy arrays in place: transposed views become
CBLAS' transpose flags and strided rows its leading dimensions, so a product through MKL
(:meth:`.shared_pool.SharedBlasPool.mkl_product`, :meth:`~.shared_pool.SharedBlasPool.two_products`)
copies nothing."""
from __future__ import annotations

import numpy

from .blas_library import NO_TRANS, TRANS
from .blas_threads import SMALL_PRODUCT_MACS

_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))


def _blas_operand(a):
    """(CBLAS transpose flag, leading dimension) under which BLAS reads the 2-D view ``a`` in
    place, or None (a layout BLAS cannot read without a copy)."""
    item, (rows, cols), (row_step, col_step) = a.itemsize, a.shape, a.strides
    if col_step == item and row_step % item == 0 and row_step >= cols * item:
        return NO_TRANS, row_step // item
    if row_step == item and col_step % item == 0 and col_step >= rows * item:
        return TRANS, col_step // item
    return None


def blas_params(a, b, out):
    """(trans_a, trans_b, m, n, k, a, lda, b, ldb, out, ldc) for ``out = a @ b`` (2-D views,
    ``out`` allocated when None) through CBLAS on the arrays in place, or None: non-float or
    mixed dtypes, an empty or mismatched shape, or a layout BLAS cannot read without a copy."""
    dtype = a.dtype
    if dtype not in _FLOATS or b.dtype != dtype or (out is not None and (out.dtype != dtype or out.ndim != 2)):
        return None
    (m, k), n = a.shape, b.shape[1]
    if min(m, k, n) == 0 or b.shape[0] != k:
        return None
    if out is None:
        out = numpy.empty((m, n), dtype)
    elif out.shape != (m, n):
        return None
    op_a, op_b, op_out = _blas_operand(a), _blas_operand(b), _blas_operand(out)
    if op_a is None or op_b is None or op_out is None or op_out[0] != NO_TRANS:
        return None
    if max(m, n, k, op_a[1], op_b[1], op_out[1]) >= 2 ** 31:  # CBLAS' 32-bit sizes (MKL's LP64)
        return None
    return op_a[0], op_b[0], m, n, k, a, op_a[1], b, op_b[1], out, op_out[1]


def side_by_side_params(products, min_macs=SMALL_PRODUCT_MACS):
    """The int64 rows :meth:`.shared_pool.SharedBlasPool.two_products` takes for two products
    ``(a, b, out, trans_a, trans_b)``, or None when they do not suit it: not both of at least
    ``min_macs`` multiply-adds, a product :func:`blas_params` refuses, two dtypes, or an output
    overlapping the other product's arrays."""
    rows, views = [], []
    for a, b, out, trans_a, trans_b in products:
        if not all(isinstance(x, numpy.ndarray) and x.ndim == 2 for x in (a, b, out)):
            return None
        params = blas_params(a.T if trans_a else a, b.T if trans_b else b, out)
        if params is None or params[2] * params[3] * params[4] < min_macs:
            return None
        trans_a, trans_b, m, n, k, a, lda, b, ldb, out, ldc = params
        rows.append([trans_a, trans_b, m, n, k, a.ctypes.data, lda, b.ctypes.data, ldb, out.ctypes.data, ldc])
        views.append((a, b, out))
    (a0, b0, out0), (a1, b1, out1) = views
    if a0.dtype != a1.dtype:
        return None
    for out, others in ((out0, (a1, b1, out1)), (out1, (a0, b0))):
        if any(numpy.may_share_memory(out, other) for other in others):
            return None
    return numpy.array(rows, dtype=numpy.int64)


def halves_params(params):
    """The int64 rows :meth:`.shared_pool.SharedBlasPool.two_products` takes for ``out = op(a)
    op(b)`` (a :func:`blas_params` tuple) cut into two halves of ``out``: rows ``[0, h)`` and
    ``[h, m)`` with ``h = ceil(m / 2)`` when ``m >= n``, else columns ``[0, h)`` and ``[h, n)``
    with ``h = ceil(n / 2)``; each half is ``out[rows] = op(a)[rows] op(b)`` (or ``out[:, cols] =
    op(a) op(b)[:, cols]``), so the two together are the whole product. None when the cut side
    is 1."""
    trans_a, trans_b, m, n, k, a, lda, b, ldb, out, ldc = params
    item = out.itemsize
    pa, pb, pc = a.ctypes.data, b.ctypes.data, out.ctypes.data
    if m >= n:
        if m < 2:
            return None
        h = (m + 1) // 2
        step_a = h * (lda if trans_a == NO_TRANS else 1) * item  # row h of op(a)
        first = [trans_a, trans_b, h, n, k, pa, lda, pb, ldb, pc, ldc]
        second = [trans_a, trans_b, m - h, n, k, pa + step_a, lda, pb, ldb, pc + h * ldc * item, ldc]
    else:
        if n < 2:
            return None
        h = (n + 1) // 2
        step_b = h * (1 if trans_b == NO_TRANS else ldb) * item  # column h of op(b)
        first = [trans_a, trans_b, m, h, k, pa, lda, pb, ldb, pc, ldc]
        second = [trans_a, trans_b, m, n - h, k, pa, lda, pb + step_b, ldb, pc + h * item, ldc]
    return numpy.array([first, second], dtype=numpy.int64)
