"""NumPy's OpenBLAS on Numba's threads during a loop (tensornet/backend/shared_pool.py)."""
import ctypes
import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("threadpoolctl")

from tensornet.backend import (_numba_kernels, _numba_threads, blas_library, mkl_blas, numpy_backend,  # noqa: E402
                               shared_pool)
from tensornet.callbacks import Callback  # noqa: E402
from tensornet.backend.blas_library import numpy_blas_controller  # noqa: E402
from tensornet.backend.blas_threads import SMALL_PRODUCT_MACS, BlasThreads  # noqa: E402
from tensornet.backend.numpy_backend import NumpyBackend  # noqa: E402
from tensornet.layers import Dense  # noqa: E402
from tensornet.models import Sequential  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def installed_callback():
    """The address in OpenBLAS' ``openblas_threads_callback_`` (0: its own threads)."""
    return ctypes.c_void_p.in_dll(numpy_blas_controller().dynlib, "openblas_threads_callback_").value or 0


@pytest.fixture
def shareable():
    reason = blas_library.unavailable_reason(numpy_blas_controller())
    if reason is not None:
        pytest.skip(f"the pool cannot be shared here: {reason}")
    if _numba_threads.THREADING_LAYER != "omp":
        pytest.skip(f"Numba's threading layer is {_numba_threads.THREADING_LAYER!r}")
    assert installed_callback() == 0
    yield
    assert installed_callback() == 0  # every test leaves OpenBLAS with its own threads


def small_model(backend, seed=3):
    """Products of 128 x 100 x 400 (above SMALL_PRODUCT_MACS: threaded) and kernels over more
    than shared_pool.PARALLEL_MIN elements), trained layer by layer: these tests are about the
    layered step's calls (the whole step has tests/test_backend_whole_step.py)."""
    model = Sequential([Dense(400, activation="relu", input_shape=(100,)), Dense(5, activation="softmax")], seed=seed)
    model.compile(optimizer=SGD(lr=0.05, momentum=0.9), loss="categorical_crossentropy", backend=backend,
                  jit_compile=False)
    return model


def small_data():
    rng = np.random.default_rng(4)
    return (rng.standard_normal((384, 100), dtype=np.float32),
            np.eye(5, dtype=np.float32)[rng.integers(0, 5, 384)])


def test_products_on_the_shared_pool_equal_openblas_own_threads(shareable):
    """Same jobs, same split: the results are identical, for every transpose and both dtypes."""
    rng = np.random.default_rng(0)
    cases = [(rng.standard_normal((128, 784), dtype=np.float32), rng.standard_normal((784, 512), dtype=np.float32)),
             (rng.standard_normal((300, 200)), rng.standard_normal((200, 400)))]
    expected = [(a @ b, a.T.T @ b.T.T, b.T @ a.T) for a, b in cases]
    threads = BlasThreads(share_pool=lambda: True)
    threads.for_product(SMALL_PRODUCT_MACS)
    assert not threads.shared and installed_callback() == 0  # only inside a loop
    threads.begin()
    threads.for_product(SMALL_PRODUCT_MACS - 1)
    assert not threads.shared  # a product on one thread does not start it
    threads.for_product(SMALL_PRODUCT_MACS)
    assert threads.shared and installed_callback() != 0
    assert numpy_blas_controller().num_threads <= threads._pool.threads
    for (a, b), want in zip(cases, expected):
        for got, ref in zip((a @ b, a.T.T @ b.T.T, b.T @ a.T), want):
            np.testing.assert_array_equal(got, ref)
    threads.restore()
    assert not threads.shared and installed_callback() == 0


def test_fit_shares_the_pool_and_gives_it_back(shareable):
    ops = NumpyBackend()
    seen = []
    original = ops.sgd_update

    def spy(*args):
        seen.append((ops._blas_threads.shared, installed_callback() != 0))
        return original(*args)

    ops.sgd_update = spy
    small_model(ops).fit(*small_data(), batch_size=128, epochs=1, verbose=0)
    assert seen and all(shared and installed for shared, installed in seen)
    assert not ops._blas_threads.shared and installed_callback() == 0


def test_a_loop_inside_a_loop_keeps_the_pool(shareable):
    """A callback that runs predict inside fit: the pool stays shared until fit returns."""
    ops = NumpyBackend()
    model = small_model(ops)
    x, y = small_data()
    seen = []

    class Probe(Callback):
        def on_epoch_end(self, epoch, logs=None):
            model.predict(x[:8])
            seen.append(ops._blas_threads.shared)

    model.fit(x, y, batch_size=128, epochs=2, verbose=0, callbacks=[Probe()])
    assert seen == [True, True] and installed_callback() == 0


def test_training_is_the_same_with_and_without_the_shared_pool(shareable, monkeypatch):
    """The threaded kernels split element-wise work only; products on one thread instead of two
    may differ in the last bit."""
    x, y = small_data()
    weights = []
    for setting in ("auto", "0"):
        monkeypatch.setenv(blas_library.ENV, setting)
        model = small_model(NumpyBackend())
        model.fit(x, y, batch_size=128, epochs=2, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variable, value", [(blas_library.ENV, "0"), ("OMP_THREAD_LIMIT", "1"),
                                             ("OMP_DYNAMIC", "true")])
def test_settings_that_rule_it_out(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    reason = blas_library.unavailable_reason(numpy_blas_controller())
    assert reason is not None and variable in reason
    assert blas_library.choose_threading_layer(numpy_blas_controller()) == "workqueue"
    pool = shared_pool.SharedBlasPool(numpy_blas_controller())
    assert pool.install() == 0 and not pool.active


def test_another_blas_has_no_setter():
    class Other:
        internal_api = "mkl"
    assert blas_library.callback_setter(Other()) is None
    assert blas_library.callback_setter(None) is None


def _fit_in_child(queue):
    ops = NumpyBackend()
    model = small_model(ops)
    model.fit(*small_data(), batch_size=128, epochs=1, verbose=0)
    queue.put((ops._blas_threads.shared, _numba_kernels.PARALLEL_MIN, installed_callback(),
               [w.tolist() for w in model.get_weights()]))


def test_a_forked_child_trains_on_its_own(shareable):
    """GNU OpenMP does not survive fork: the child removes the callback, runs every kernel on one
    thread and every product on NumPy's BLAS, and trains to the parent's weights."""
    ops = NumpyBackend()
    parent = small_model(ops)
    threads = ops._blas_threads
    ops.start()
    threads.for_product(SMALL_PRODUCT_MACS)  # the pool in use at the fork, as inside fit
    assert threads.shared
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fit_in_child, args=(queue,))
    child.start()
    shared, parallel_min, callback, child_weights = queue.get(timeout=120)
    child.join(timeout=60)
    ops.finish()
    assert child.exitcode == 0
    assert (shared, parallel_min, callback) == (False, sys.maxsize, 0)
    parent.fit(*small_data(), batch_size=128, epochs=1, verbose=0)
    for a, b in zip(parent.get_weights(), child_weights):  # the parent's products may be MKL's
        np.testing.assert_allclose(a, np.asarray(b, dtype=a.dtype), rtol=1e-4, atol=1e-6)


def test_more_blas_threads_than_pool_threads_are_capped(shareable):
    """OpenBLAS' jobs wait on each other: with more of them than pool threads a product would
    never finish. The count is capped while the pool is shared, and given back afterwards."""
    script = textwrap.dedent("""
        import numpy as np
        from tensornet.backend import _numba_kernels  # picks Numba's layer before any launch
        from tensornet.backend.blas_library import numpy_blas_controller
        from tensornet.backend.blas_threads import BlasThreads
        import numba
        numba.set_num_threads(2)
        controller = numpy_blas_controller()
        controller.set_num_threads(4)
        threads = BlasThreads(share_pool=lambda: True)
        threads.begin()
        a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
        threads.for_product(512 ** 3)
        assert threads.shared and controller.num_threads == 2, controller.num_threads
        np.testing.assert_allclose(a @ a, (a.astype(np.float64) @ a).astype(np.float32), rtol=1e-3, atol=1e-3)
        threads.restore()
        assert controller.num_threads == 4
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---------------------------------------------------------------- two products side by side
def _products(rng, dtype):
    """A Dense layer's backward pair (x^T dz, dz W^T) of threaded size."""
    x, dz = rng.standard_normal((128, 300)).astype(dtype), rng.standard_normal((128, 400)).astype(dtype)
    w = rng.standard_normal((300, 400)).astype(dtype)
    return [(x, dz, np.empty((300, 400), dtype), True, False), (dz, w, np.empty((128, 300), dtype), False, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_products_side_by_side_equal_one_after_the_other(shareable, dtype, monkeypatch):
    monkeypatch.setattr(numpy_backend, "MKL_SIDE_BY_SIDE_MACS", 0)  # MKL takes a pair this small one by one
    ops = NumpyBackend()
    products = _products(np.random.default_rng(5), dtype)
    expected = [a.T @ b if ta else a @ b.T for a, b, _, ta, tb in products]
    ops.start()
    try:
        ops.matmul(products[0][0], products[0][1], trans_a=True)  # the loop's first threaded product
        assert ops._blas_threads.can_run_two(np.dtype(dtype))
        results = ops.matmuls(products)
        assert numpy_blas_controller().num_threads == 1  # each product on one thread of the pool
    finally:
        ops.finish()
    for result, (_, _, out, _, _), want in zip(results, products, expected):
        assert result is out  # one thread sums in another order than two may: the last bit or so
        np.testing.assert_allclose(out, want, **({"rtol": 1e-5, "atol": 1e-4} if dtype == np.float32
                                                 else {"rtol": 1e-12, "atol": 1e-10}))


def test_mkl_runs_a_pair_below_its_threshold_one_after_the_other(shareable, monkeypatch):
    ops = NumpyBackend()
    products = _products(np.random.default_rng(7), np.float32)
    ops.start()
    try:
        ops.matmul(products[0][0], products[0][1], trans_a=True)
        if ops._blas_threads.mkl is None:
            pytest.skip("products do not go to MKL here")
        sequential = []
        ops.matmul = lambda *args, **kwargs: sequential.append(args) or NumpyBackend.matmul(ops, *args, **kwargs)
        ops.matmuls(products)  # 128 x 300 x 400 each: below MKL_SIDE_BY_SIDE_MACS
        assert len(sequential) == 2
        monkeypatch.setattr(numpy_backend, "MKL_SIDE_BY_SIDE_MACS", 128 * 300 * 400)
        sequential.clear()
        ops.matmuls(products)  # at the threshold: side by side
        assert not sequential
    finally:
        ops.finish()
    for (a, b, out, ta, tb) in products:
        np.testing.assert_allclose(out, a.T @ b if ta else a @ b.T, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mkl_halves_of_one_product_equal_the_whole_product(shareable, dtype, monkeypatch):
    rng = np.random.default_rng(8)
    ops = NumpyBackend()
    ops.start()
    try:
        ops.matmul(*_products(rng, dtype)[0][:2], trans_a=True)  # the loop's first threaded product
        if ops._blas_threads.mkl is None:
            pytest.skip("products do not go to MKL here")
        halves = []
        two_products = ops._blas_threads.two_products
        monkeypatch.setattr(ops._blas_threads, "two_products", lambda p, d: halves.append(p) or two_products(p, d))
        monkeypatch.setattr(numpy_backend, "MKL_HALVES_MACS", 0)
        for m, n, k in ((37, 23, 19), (9, 41, 13), (64, 64, 7)):
            for ta in (False, True):
                for tb in (False, True):
                    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                    b = rng.standard_normal((n, k + 3) if tb else (k, n + 3)).astype(dtype)[:, :k if tb else n]
                    out = np.full((m, n + 2), 7, dtype)[:, :n]  # a strided output, whose padding stays
                    want = (a.T if ta else a) @ (b.T if tb else b)
                    assert ops.matmul(a, b, out=out, trans_a=ta, trans_b=tb) is out
                    np.testing.assert_allclose(out, want, **({"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32
                                                             else {"rtol": 1e-12, "atol": 1e-12}))
                    assert (out.base[:, n:] == 7).all()
        assert len(halves) == 12
    finally:
        ops.finish()


def test_products_that_do_not_suit_run_one_after_the_other(shareable):
    ops = NumpyBackend()
    rng = np.random.default_rng(6)
    ops.start()
    try:
        ops.matmul(*_products(rng, np.float32)[0][:2], trans_a=True)
        calls = []
        ops.matmul = lambda *args, **kwargs: calls.append(args) or NumpyBackend.matmul(ops, *args, **kwargs)
        x, dz, out, _, _ = _products(rng, np.float32)[0]
        small = (x[:4], dz[:4], np.empty((300, 400), np.float32), True, False)  # 4 x 300 x 400: one thread
        shared_out = (x, dz, out, True, False)  # writes into the other product's output
        strided = (x[:, ::2], dz, np.empty((150, 400), np.float32), True, False)  # a layout BLAS cannot read
        for other in (small, shared_out, strided):
            calls.clear()
            ops.matmuls([(x, dz, out, True, False), other])
            assert len(calls) == 2
        with pytest.raises(ValueError, match="inner dimensions"):
            ops.matmuls([(x, dz, out, True, False), (x, dz, out, False, False)])
    finally:
        ops.finish()


def test_products_from_other_threads_while_the_pool_is_shared(shareable):
    """A user's thread may call NumPy's BLAS while fit runs: its threaded products go through
    the callback at the same time as the loop's, and every result stays exact."""
    import threading

    rng = np.random.default_rng(9)
    pairs = [(rng.standard_normal((256, 300), dtype=np.float32), rng.standard_normal((300, 280), dtype=np.float32))
             for _ in range(6)]
    expected = [a @ b for a, b in pairs]
    threads = BlasThreads(share_pool=lambda: True)
    threads.begin()
    threads.for_product(SMALL_PRODUCT_MACS)
    assert threads.shared
    wrong = []

    def work(offset):
        out = np.empty((256, 280), np.float32)
        for i in range(60):
            j = (i + offset) % len(pairs)
            np.matmul(*pairs[j], out=out)
            if not np.array_equal(out, expected[j]):
                wrong.append(j)

    try:
        workers = [threading.Thread(target=work, args=(k,)) for k in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    finally:
        threads.restore()
    assert not wrong


def test_info_says_how_threads_are_shared(monkeypatch):
    controller = numpy_blas_controller()
    text = shared_pool.describe(controller)
    if blas_library.unavailable_reason(controller) is None and _numba_threads.THREADING_LAYER == "omp":
        assert "one GNU OpenMP pool" in text
        assert ("MKL" in text) == (mkl_blas.find_mkl_rt() is not None)
    assert NumpyBackend().device_info()["cpu_threads"] == text
    monkeypatch.setenv(blas_library.ENV, "0")
    assert shared_pool.describe(controller) == f"BLAS on its own threads ({blas_library.ENV}=0)"

