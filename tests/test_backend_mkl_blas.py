"""MKL's GEMM for the NumPy backend's products (tensornet/backend/mkl_blas.py)."""
import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("threadpoolctl")

from tensornet.backend import _numba_threads, blas_library, mkl_blas  # noqa: E402
from tensornet.backend.blas_library import numpy_blas_controller  # noqa: E402
from tensornet.backend.numpy_backend import NumpyBackend  # noqa: E402
from tensornet.layers import Dense  # noqa: E402
from tensornet.models import Sequential  # noqa: E402


@pytest.fixture
def mkl_ops():
    """A backend inside a loop whose products go to MKL."""
    if mkl_blas.find_mkl_rt() is None:
        pytest.skip("the mkl package is not installed")
    reason = blas_library.unavailable_reason(numpy_blas_controller())
    if reason is not None or _numba_threads.THREADING_LAYER != "omp":
        pytest.skip(f"the pool cannot be shared here: {reason or _numba_threads.THREADING_LAYER}")
    ops = NumpyBackend()
    ops.start()
    ops.matmul(np.ones((256, 256), np.float32), np.ones((256, 256), np.float32))  # a threaded product
    assert ops._blas_threads.mkl is not None, ops._blas_threads._pool.mkl_reason
    yield ops
    ops.finish()
    assert ops._blas_threads.mkl is None  # outside a loop: NumPy's BLAS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_products_equal_numpy(mkl_ops, dtype, trans_a, trans_b):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((70, 90) if trans_a else (90, 70)).astype(dtype)
    b = rng.standard_normal((50, 70) if trans_b else (70, 50)).astype(dtype)
    want = (a.T if trans_a else a) @ (b.T if trans_b else b)
    out = np.full((90, 50), np.nan, dtype)
    assert mkl_ops.matmul(a, b, out=out, trans_a=trans_a, trans_b=trans_b) is out
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, want, **tol)
    allocated = mkl_ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    assert allocated.dtype == dtype
    np.testing.assert_allclose(allocated, want, **tol)


def test_views_blas_reads_in_place_and_layouts_it_cannot(mkl_ops):
    """Row-strided views go to MKL with their leading dimension; column-strided ones, integer
    arrays and an output of another dtype go to NumPy; the results are right either way."""
    rng = np.random.default_rng(2)
    big = rng.standard_normal((64, 80), dtype=np.float32)
    b = rng.standard_normal((40, 30), dtype=np.float32)
    out = np.empty((64, 60), np.float32)[:, 5:35]  # an output with a row stride of 60
    np.testing.assert_allclose(mkl_ops.matmul(big[:, :40], b, out=out), big[:, :40] @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mkl_ops.matmul(big[:, ::2], b), big[:, ::2] @ b, rtol=1e-5, atol=1e-5)
    ints = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(mkl_ops.matmul(ints, ints.T), ints @ ints.T)
    with pytest.raises(ValueError, match="inner dimensions"):
        mkl_ops.matmul(big, b)


def test_training_with_mkl_follows_numpy_blas(monkeypatch):
    if mkl_blas.find_mkl_rt() is None:
        pytest.skip("the mkl package is not installed")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 100), dtype=np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 256)]
    runs = []
    for setting in ("auto", "numpy"):
        monkeypatch.setenv(mkl_blas.ENV, setting)
        ops = NumpyBackend()
        model = Sequential([Dense(400, activation="relu", input_shape=(100,)), Dense(5, activation="softmax")], seed=1)
        model.compile(optimizer="sgd", loss="categorical_crossentropy", backend=ops)
        seen = []
        ops.sgd_update = (lambda update: lambda *args: seen.append(ops._blas_threads.mkl is not None) or update(*args))(
            ops.sgd_update)
        history = model.fit(x, y, batch_size=128, epochs=3, verbose=0)
        runs.append((model.get_weights(), history.history["loss"], seen))
    (w_mkl, loss_mkl, seen_mkl), (w_np, loss_np, seen_np) = runs
    if blas_library.unavailable_reason(numpy_blas_controller()) is None and _numba_threads.THREADING_LAYER == "omp":
        assert all(seen_mkl) and not any(seen_np)
    for a, b in zip(w_mkl, w_np):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss_mkl, loss_np, rtol=1e-5)


def test_a_bad_setting_is_named(monkeypatch):
    monkeypatch.setenv(mkl_blas.ENV, "atlas")
    with pytest.raises(ValueError, match="TENSORNET_BLAS"):
        NumpyBackend()


def test_without_the_package_nothing_is_loaded(monkeypatch):
    monkeypatch.setattr(mkl_blas, "find_mkl_rt", lambda: None)
    assert mkl_blas.load(2) == (None, "the mkl package is not installed")
    monkeypatch.setenv(mkl_blas.ENV, "numpy")
    assert mkl_blas.load(2) == (None, "TENSORNET_BLAS=numpy")
