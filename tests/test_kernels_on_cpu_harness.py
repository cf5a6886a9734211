"""The host CUDA harness itself (tests/cuda_harness) can fail: out-of-bounds accesses, a missing
``__syncthreads``, a divergent barrier and wrong argument types are caught; the last block of a
grid varies between launches; warp shuffles, votes and float atomics give CUDA's results."""
from __future__ import annotations

import numpy as np
import pytest

from tests.cuda_harness import HERE, KernelFault, load_family, load_source

pytestmark = pytest.mark.kernels_on_cpu

NAMES = ("write_past_end", "read_before_start", "write_before_start", "block_sum<0>",
         "block_sum<1>", "broadcast<0>", "broadcast<1>", "last_block", "divergent_barrier", "warp_ops", "float_total")


@pytest.fixture(scope="module")
def faulty():
    return load_source("faulty_kernels", (HERE / "faulty_kernels.cu").read_text(), NAMES)


@pytest.mark.parametrize("n", [1, 31, 257, 1024])
def test_write_past_the_end_fails(faulty, n):
    out = np.zeros(n, np.float32)
    with pytest.raises(KernelFault, match=r"argument 1 \(\*float32.*0 bytes past its end"):
        faulty.get_function("write_past_end")((2,), (256,), (np.int64(n), out))


def test_read_before_the_start_fails(faulty):
    x = np.ones(512, np.float64)  # exactly one page: in[-1] is in the guard page
    with pytest.raises(KernelFault, match=r"argument 1 \(\*float64.*8 bytes before its start"):
        faulty.get_function("read_before_start")((2,), (256,), (np.int64(512), x, np.empty_like(x)))


def test_write_before_the_start_fails(faulty):
    out = np.ones(100, np.float32)  # out[-1] lands in the canary before the data
    with pytest.raises(KernelFault, match="4 bytes before its start were written"):
        faulty.get_function("write_before_start")((1,), (128,), (np.int64(100), out))


def test_missing_syncthreads_gives_a_wrong_sum(faulty):
    rng = np.random.default_rng(0)
    x = rng.uniform(1.0, 2.0, size=4 * 256).astype(np.float32)
    expected = x.reshape(4, 256).sum(axis=1, dtype=np.float64)
    good, bad = np.zeros(4, np.float32), np.zeros(4, np.float32)
    faulty.get_function("block_sum<1>")((4,), (256,), (x, good))
    np.testing.assert_allclose(good, expected, rtol=1e-5)
    wrong = 0
    for _ in range(2):  # two launches: threads in increasing, then decreasing order (or back)
        faulty.get_function("block_sum<0>")((4,), (256,), (x, bad))
        wrong += not np.allclose(bad, expected, rtol=1e-3)
    assert wrong == 1, "a missing __syncthreads went unnoticed"


def test_missing_syncthreads_after_a_broadcast_is_caught(faulty):
    """Thread 0 writes a flag, the others read it with no barrier between: one of two
    launches gives the wrong answer."""
    wrong = 0
    for _ in range(2):
        out = np.zeros(256, np.int32)
        faulty.get_function("broadcast<0>")((1,), (256,), (out,))
        wrong += not (out == 7).all()
        faulty.get_function("broadcast<1>")((1,), (256,), (out,))
        assert (out == 7).all()
    assert wrong >= 1


def test_divergent_barrier_is_a_deadlock(faulty):
    with pytest.raises(KernelFault, match="deadlock"):
        faulty.get_function("divergent_barrier")((1,), (64,), (np.zeros(64, np.float32),))


def test_the_last_block_varies(faulty):
    kernel = faulty.get_function("last_block")
    lasts = set()
    for _ in range(20):
        counter, last = np.zeros((), np.uint32), np.full((), 999, np.uint32)
        kernel((16,), (64,), (counter, last))
        assert counter == 16 and last < 16
        lasts.add(int(last))
    assert len(lasts) > 1 and lasts != {15}, lasts


def test_warp_shuffles_and_votes(faulty):
    threads = 64
    down, lane5 = np.zeros(threads, np.int32), np.zeros(threads, np.int32)
    ballot, any_40 = np.zeros(threads, np.uint32), np.zeros(threads, np.int32)
    faulty.get_function("warp_ops")((1,), (threads,), (down, lane5, ballot, any_40))
    t = np.arange(threads)
    lane = t % 32
    np.testing.assert_array_equal(down, np.where(lane + 3 < 32, t + 3, t))
    np.testing.assert_array_equal(lane5, (t - lane + 5) * 10)
    mask = sum(1 << k for k in range(32) if k % 3 == 0)
    np.testing.assert_array_equal(ballot, np.full(threads, mask, np.uint32))
    np.testing.assert_array_equal(any_40, (t >= 32).astype(np.int32))


def test_float_atomic_add_from_every_thread(faulty):
    total = np.zeros((), np.float32)
    faulty.get_function("float_total")((12,), (128,), (total,))
    assert total == 12 * 128


@pytest.mark.parametrize("bad, message", [
    (np.float64(0.1), "argument 4 must be a float32 scalar"),
    (0.1, "argument 4 must be a float32 scalar .* got float64"),
    (np.int32(1), "argument 4 must be a float32 scalar .* got int32"),
])
def test_wrong_scalar_type_is_a_type_error(bad, message):
    kernel = load_family("optimizers").get_function("sgd_update<float>")
    w = np.ones(8, np.float32)
    args = [np.int64(8), w, w.copy(), w, bad, np.float32(0), np.float32(0), np.int32(0),
            np.int32(0), np.int32(0)]
    with pytest.raises(TypeError, match=message):
        kernel((1,), (256,), tuple(args))


def test_wrong_array_dtype_and_count_are_type_errors():
    kernel = load_family("optimizers").get_function("adagrad_update<float>")
    w = np.ones(8, np.float32)
    with pytest.raises(TypeError, match=r"argument 2 must be a float32 array, got float64"):
        kernel((1,), (256,), (np.int64(8), w, w.astype(np.float64), w.copy(), np.float32(0.1), np.float32(1e-7)))
    with pytest.raises(TypeError, match="takes 6 arguments"):
        kernel((1,), (256,), (np.int64(8), w))
    with pytest.raises(TypeError, match="C-contiguous"):
        kernel((1,), (256,), (np.int64(4), w[::2], w.copy(), w.copy()[::2].copy(), np.float32(0.1),
                              np.float32(1e-7)))


def test_unknown_name_expression():
    with pytest.raises(KeyError, match="not a kernel of optimizers"):
        load_family("optimizers").get_function("sgd_update<half>")
