"""cblas_params.halves_params: the two halves of a product are the CBLAS arguments of the two
halves of ``out`` taken as views, and through MKL they sum to the whole product."""
import numpy as np
import pytest

from tensornet.backend.cblas_params import blas_params, halves_params


def _operand(rng, rows, cols, transposed, strided, dtype):
    """A (rows, cols) view: C-ordered, or the transpose of a C-ordered array, with its rows (of
    the stored array) strided when asked."""
    shape = (cols, rows) if transposed else (rows, cols)
    base = rng.standard_normal((shape[0], shape[1] + (5 if strided else 0))).astype(dtype)
    stored = base[:, :shape[1]]
    return stored.T if transposed else stored


CASES = [(m, n, k, ta, tb, strided) for m, n, k in ((7, 5, 3), (5, 9, 4), (33, 33, 17), (2, 1, 6), (1, 2, 3))
         for ta in (False, True) for tb in (False, True) for strided in (False, True)]


@pytest.mark.parametrize("m, n, k, ta, tb, strided", CASES)
def test_halves_are_the_params_of_the_two_halves_of_out(m, n, k, ta, tb, strided):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    a = _operand(rng, m, k, ta, strided, np.float32)
    b = _operand(rng, k, n, tb, strided, np.float32)
    out = _operand(rng, m, n, False, strided, np.float32)
    rows = halves_params(blas_params(a, b, out))
    h = (m + 1) // 2 if m >= n else (n + 1) // 2
    if m >= n:
        views = [(a[:h], b, out[:h]), (a[h:], b, out[h:])]
    else:
        views = [(a, b[:, :h], out[:, :h]), (a, b[:, h:], out[:, h:])]
    for row, (va, vb, vout) in zip(rows, views):
        ta_, tb_, mm, nn, kk, pa, lda, pb, ldb, pc, ldc = blas_params(va, vb, vout)
        assert row.tolist() == [ta_, tb_, mm, nn, kk, pa.ctypes.data, lda, pb.ctypes.data, ldb, pc.ctypes.data, ldc]


def test_a_product_of_one_cell_has_no_halves():
    a, b = np.ones((1, 4), np.float32), np.ones((4, 1), np.float32)
    assert halves_params(blas_params(a, b, None)) is None
