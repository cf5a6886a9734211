"""tensornet.backend.huge_pages: zeroed, aligned, writable buffers that hold their mapping; the
flat parameter, gradient and optimizer-state buffers, layer workspaces and scratch buffers of a
NumPy-backend model made by it."""
import copy
import gc
import pickle
import sys

import numpy as np
import pytest

from tensornet import Sequential
from tensornet.backend import NumpyBackend, huge_pages
from tensornet.layers import Dense
from tensornet.optimizers import SGD, Adam

LINUX = sys.platform.startswith("linux")
#: Elements of float32 that span more than one huge page, by an awkward amount.
LARGE = (huge_pages.HUGE_PAGE // 4) * 2 + 12_345


def smaps_huge_kb(address):
    """``AnonHugePages`` (kB) of the mapping holding ``address`` in /proc/self/smaps."""
    inside = False
    for line in open("/proc/self/smaps"):
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            low, high = (int(part, 16) for part in head.split("-"))
            inside = low <= address < high
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    return None


needs_huge_pages = pytest.mark.skipif(not huge_pages.enabled(), reason="no MADV_HUGEPAGE on this platform")


@needs_huge_pages
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_large_buffer_is_zero_aligned_writable_and_contiguous(dtype):
    a = huge_pages.zeros(LARGE, dtype)
    assert a.shape == (LARGE,) and a.dtype == np.dtype(dtype)
    assert a.flags.writeable and a.flags.c_contiguous
    assert not a.any() and a.ctypes.data % huge_pages.HUGE_PAGE == 0
    rng = np.random.default_rng(3)
    values = rng.standard_normal(LARGE).astype(dtype) + 1
    a[...] = values
    np.testing.assert_array_equal(a, values)


def test_small_buffer_is_left_to_the_backend():
    assert huge_pages.zeros(1000, "float32") is None
    a = NumpyBackend().lasting_zeros((1000,), "float32")
    assert a.shape == (1000,) and a.dtype == np.float32 and not a.any() and a.base is None


@needs_huge_pages
def test_shapes_and_dtypes_as_asked():
    a = huge_pages.zeros((3 * 1024, 1024), "bool")
    assert a.shape == (3 * 1024, 1024) and a.dtype == np.bool_ and not a.any()
    b = huge_pages.zeros((600, 7, 250), "float32")
    assert b.shape == (600, 7, 250) and b.flags.c_contiguous and b.ctypes.data % huge_pages.HUGE_PAGE == 0
    assert huge_pages.zeros((2, 3), "float32") is None


@needs_huge_pages
def test_buffer_outlives_every_other_reference_to_its_mapping():
    a = huge_pages.zeros(LARGE, "float32")
    a[-1] = 7.0
    view = a[-10:]
    del a
    gc.collect()
    assert view[-1] == 7.0  # the view still holds the mapping


@needs_huge_pages
def test_pickle_and_deepcopy_copy_the_values():
    a = huge_pages.zeros(LARGE, "float32")
    a[::1000] = np.arange(a[::1000].size, dtype=np.float32) + 0.5
    for b in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a), a.copy()):
        np.testing.assert_array_equal(b, a)
        assert not np.shares_memory(a, b)


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("TENSORNET_HUGE_PAGES", "0")
    assert not huge_pages.enabled() and huge_pages.zeros(LARGE, "float32") is None
    a = NumpyBackend().lasting_zeros(LARGE, "float32")
    assert a.shape == (LARGE,) and a.base is None and not a.any()


@needs_huge_pages
@pytest.mark.skipif(not LINUX, reason="/proc/self/smaps is Linux's")
def test_kernel_backs_a_touched_buffer_with_huge_pages_where_it_grants_them():
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        setting = f.read()
    if "[never]" in setting:
        pytest.skip("transparent huge pages are off on this machine")
    a = huge_pages.zeros(LARGE, "float32")
    a[...] = 1.0
    huge_kb = smaps_huge_kb(a.ctypes.data)
    if not huge_kb:
        pytest.skip("the kernel granted no huge page now (memory too fragmented)")
    assert huge_kb >= huge_pages.HUGE_PAGE // 1024


@pytest.mark.parametrize("optimizer", [SGD(lr=0.01, momentum=0.9, nesterov=True), Adam()], ids=["sgd", "adam"])
def test_model_buffers_on_huge_pages_train_as_on_ordinary_pages(monkeypatch, optimizer):
    """784-1024-10 (3.3 MB of float32 parameters): the flat buffers come from
    :func:`huge_pages.zeros`, and two steps give the same weights bit for bit as with the
    buffers on ordinary pages."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    weights = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("TENSORNET_HUGE_PAGES", setting)
        model = Sequential([Dense(1024, activation="relu", input_shape=(784,)), Dense(10, activation="softmax")],
                           seed=1)
        model.compile(optimizer=copy.deepcopy(optimizer), loss="sparse_categorical_crossentropy",
                      backend=NumpyBackend())
        params, grads = model.store.flat()
        state = next(iter(model.optimizer.state.values()))
        for buffer in (params, grads, *state.values()):
            assert buffer.dtype == np.float32 and buffer.ndim == 1
            assert aligned(buffer) == (setting == "1" and huge_pages.enabled())
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
        weights[setting] = model.get_weights()
    for a, b in zip(weights["1"], weights["0"]):
        np.testing.assert_array_equal(a, b)


def aligned(buffer):
    return buffer.base is not None and buffer.ctypes.data % huge_pages.HUGE_PAGE == 0


@pytest.mark.parametrize("setting", ["1", "0"])
def test_layer_workspaces_and_scratch_buffers(monkeypatch, setting):
    """Large workspaces and scratch buffers are huge-page buffers, reused from call to call;
    small ones (and every one with ``TENSORNET_HUGE_PAGES=0``) are ordinary arrays."""
    monkeypatch.setenv("TENSORNET_HUGE_PAGES", setting)
    ops = NumpyBackend()
    layer = Dense(8)
    layer.build((16,), ops=ops, dtype="float32")
    for buffer, large in ((layer.workspace("t", (1024, 1024)), True), (layer.workspace("s", (4, 4)), False),
                          (ops.scratch(("k",), (700, 1024), "float32"), True), (ops.scratch(("m",), (3,), "bool"), False)):
        assert not buffer.any()
        assert aligned(buffer) == (large and setting == "1" and huge_pages.enabled())
    assert layer.workspace("t", (1024, 1024)) is layer.workspace("t", (1024, 1024))
    assert ops.scratch(("k",), (700, 1024), "float32") is ops.scratch(("k",), (700, 1024), "float32")
