"""BLAS thread count per product size (tensornet/backend/blas_threads.py)."""
import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from tensornet.backend.blas_library import numpy_blas_controller  # noqa: E402
from tensornet.backend.blas_threads import SMALL_PRODUCT_MACS, BlasThreads  # noqa: E402
from tensornet.backend.numpy_backend import NumpyBackend  # noqa: E402


def blas_threads():
    return numpy_blas_controller().num_threads


@pytest.fixture
def default_threads():
    if numpy_blas_controller() is None:
        pytest.skip("NumPy's BLAS is not one threadpoolctl can find under numpy.libs")
    before = blas_threads()
    if before < 2:
        pytest.skip("BLAS runs one thread here: nothing to switch")
    yield before
    assert blas_threads() == before  # every test leaves BLAS as it found it


def test_small_products_run_on_one_thread_large_ones_on_all(default_threads):
    threads = BlasThreads()
    threads.for_product(SMALL_PRODUCT_MACS - 1)
    assert blas_threads() == default_threads  # outside a loop BLAS is left as it is
    threads.begin()
    threads.for_product(SMALL_PRODUCT_MACS - 1)
    assert blas_threads() == 1
    threads.for_product(SMALL_PRODUCT_MACS)
    assert blas_threads() == default_threads
    threads.for_product(10)
    threads.restore()
    assert blas_threads() == default_threads


def test_matmul_picks_the_count_and_the_loops_give_it_back(default_threads):
    from tensornet.layers import Dense
    from tensornet.models import Sequential

    ops = NumpyBackend()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((8, 16), dtype=np.float32), rng.standard_normal((16, 4), dtype=np.float32)
    np.testing.assert_allclose(ops.matmul(a, b), a @ b, rtol=1e-6)
    assert blas_threads() == default_threads  # outside a loop: left as it is
    ops.start()
    ops.matmul(a, b)
    assert blas_threads() == 1  # 512 multiply-adds: one thread
    ops.finish()
    assert blas_threads() == default_threads

    model = Sequential([Dense(4, activation="softmax", input_shape=(16,))], seed=0)
    model.compile(optimizer="sgd", loss="categorical_crossentropy", backend=ops)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]
    model.fit(a, y, epochs=1, verbose=0)
    assert blas_threads() == default_threads  # fit ran small products, then restored
    model.predict(a)
    assert blas_threads() == default_threads
