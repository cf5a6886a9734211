"""The trainer: whole-model parity between NumPy and CuPy, device-resident data, streaming.

GPU tests (marked ``gpu``) skip cleanly where CuPy, the driver or a device is missing.
"""
import numpy as np
import pytest

from tensornet.layers import Dense
from tensornet.models import Sequential
from tensornet.optimizers import SGD


def _model(backend, seed=11):
    model = Sequential(seed=seed)
    model.add(Dense(64, activation="relu", input_shape=(30,)))
    model.add(Dense(32, activation="tanh"))
    model.add(Dense(5, activation="softmax"))
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"], backend=backend,
                  optimizer=SGD(lr=0.05, momentum=0.9, nesterov=True, decay=1e-3, weight_decay=1e-4))
    return model


def _data(n=1600, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 30)).astype("float32")
    labels = (x[:, :5] * rng.normal(size=5)).argmax(axis=1)
    return x, np.eye(5, dtype="float32")[labels]


@pytest.mark.gpu
def test_fifty_sgd_steps_agree_between_numpy_and_cupy():
    x, y = _data()
    cpu, gpu = _model("numpy"), _model("cupy")
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_array_equal(a, b)  # same seed -> same initial weights on both
    history_cpu = cpu.fit(x, y, batch_size=32, epochs=1, verbose=0)  # 50 steps, same permutation
    history_gpu = gpu.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert cpu.optimizer.iterations == gpu.optimizer.iterations == 50
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5)
    assert history_gpu.history["loss"][0] == pytest.approx(history_cpu.history["loss"][0], rel=1e-5)
    assert history_gpu.history["accuracy"][0] == pytest.approx(history_cpu.history["accuracy"][0], abs=1e-3)


@pytest.mark.gpu
def test_fit_keeps_data_on_the_device_and_predict_matches_numpy():
    import cupy

    x, y = _data(n=500)
    gpu = _model("cupy")
    gpu.fit(cupy.asarray(x), cupy.asarray(y), batch_size=64, epochs=2, verbose=0)
    cpu = _model("numpy")
    cpu.set_weights(gpu.get_weights())
    on_device = gpu.predict(cupy.asarray(x))
    assert isinstance(on_device, cupy.ndarray) and on_device.dtype == cupy.float32
    on_host = gpu.predict(x)
    assert isinstance(on_host, np.ndarray)
    np.testing.assert_allclose(on_host, cpu.predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cupy.asnumpy(on_device), on_host, rtol=0, atol=0)


class SmallDevice:
    """A NumPy backend that reports a small device memory budget, so that ``fit`` streams."""

    @staticmethod
    def make(budget_bytes):
        from tensornet.backend import NumpyBackend

        class Backend(NumpyBackend):
            name = "numpy"

            def memory_budget(self):
                return budget_bytes

        return Backend()


@pytest.mark.parametrize("shuffle", [True, False])
def test_streamed_fit_trains_exactly_like_resident_fit(shuffle):
    """Data larger than the device budget is streamed in chunks of whole batches; the batches,
    their order and so the weights are bit-identical to training on resident data."""
    x, y = _data(n=1000)
    resident = _model("numpy")
    streamed = Sequential(seed=11)
    for layer_units, activation in ((64, "relu"), (32, "tanh"), (5, "softmax")):
        kwargs = {"input_shape": (30,)} if layer_units == 64 else {}
        streamed.add(Dense(layer_units, activation=activation, **kwargs))
    device = SmallDevice.make(budget_bytes=100_000)  # x is 120 kB: streamed, chunks of 5 batches
    streamed.compile(loss="categorical_crossentropy", metrics=["accuracy"], backend=device,
                     optimizer=SGD(lr=0.05, momentum=0.9, nesterov=True, decay=1e-3, weight_decay=1e-4))
    h1 = resident.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=shuffle, validation_split=0.2)
    h2 = streamed.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=shuffle, validation_split=0.2)
    assert streamed._trainer._streamed and not resident._trainer._streamed
    assert streamed._trainer._chunk_rows(x, y, 32) == 160  # 100 kB / 4 / 140 B per row -> 178 -> 5 x 32
    for a, b in zip(resident.get_weights(), streamed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1.history == h2.history


def test_streamed_fit_waits_before_refilling_a_host_buffer():
    """CuPy's ``ndarray.set`` copies asynchronously (from page-locked memory the host returns
    before the copy ran), so a staging buffer is refilled only after ``synchronize``."""
    events = []

    from tensornet.backend import NumpyBackend

    class Backend(NumpyBackend):
        name = "numpy"

        def memory_budget(self):
            return 100_000

        def host_buffer(self, shape, dtype="float32"):
            buffer = super().host_buffer(shape, dtype)
            events.append(("new", id(buffer)))
            return buffer

        def to_device(self, x, out=None):
            events.append(("copy", id(x)))
            return super().to_device(x, out=out)

        def synchronize(self):
            events.append(("sync", None))

    x, y = _data(n=1000)
    model = Sequential(seed=11)
    model.add(Dense(5, activation="softmax", input_shape=(30,)))
    model.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.05), backend=Backend())
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert model._trainer._streamed
    copied_since_sync = set()
    for kind, ident in events:
        if kind == "sync":
            copied_since_sync.clear()
        elif kind == "copy":
            assert ident not in copied_since_sync, "a host buffer was refilled before its copy finished"
            copied_since_sync.add(ident)
        else:
            copied_since_sync.discard(ident)
