"""Out of memory in fit / evaluate / predict: a DeviceOutOfMemoryError with the figures a user
needs, the memory released, and training possible again at the suggested batch size."""
from __future__ import annotations

import numpy as np
import pytest

from tensornet import Sequential
from tensornet.errors import DeviceOutOfMemoryError
from tensornet.layers import Dense
from tensornet.training.memory import activation_bytes_per_example, parameter_bytes, suggested_batch_size
from tensornet.optimizers import Adam


def make_model(backend="numpy", units=64):
    model = Sequential([Dense(units, activation="relu", input_shape=(20,)), Dense(10, activation="softmax")], seed=0)
    model.compile(optimizer=Adam(), loss="sparse_categorical_crossentropy", backend=backend)
    return model


def test_estimates_follow_their_formulas():
    model = make_model()
    model.build((20,))
    weights = 20 * 64 + 64 + 64 * 10 + 10
    # Values and gradients (padded flat buffers) plus Adam's two moments: about 4 copies.
    assert 4 * 4 * weights <= parameter_bytes(model) <= 4 * 4 * (weights + 4 * 16)
    assert activation_bytes_per_example(model) == 4 * (2 * 20 + 3 * (64 + 10))


@pytest.mark.parametrize("batch, per_example, free, expected", [
    (1024, 1000, 10 ** 6, 256),     # half of 1 MB holds 500 examples -> 256
    (256, 1000, 10 ** 9, 128),      # everything would fit: still the next power of two below
    (64, 10 ** 9, 10 ** 6, None),   # not one example fits
    (1, 10, 10 ** 6, None),         # nothing below 1
    (64, 0, 10 ** 6, None),
])
def test_suggested_batch_size(batch, per_example, free, expected):
    assert suggested_batch_size(batch, per_example, free) == expected


@pytest.mark.parametrize("loop", ["fit", "evaluate", "predict"])
def test_out_of_memory_is_reported_with_figures_and_the_process_continues(monkeypatch, loop):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 20)).astype("float32"), rng.integers(0, 10, 300)
    model = make_model()
    model.fit(x, y, batch_size=32, verbose=0)
    ops = model.ops
    matmul = type(ops).matmul
    released = []

    def failing_matmul(self, a, b, out=None, **kwargs):
        if a.shape[0] > 64:
            raise MemoryError("Unable to allocate 7.00 GiB for an array")
        return matmul(self, a, b, out=out, **kwargs)

    monkeypatch.setattr(type(ops), "matmul", failing_matmul)
    monkeypatch.setattr(ops, "release_memory", lambda: released.append(True))
    monkeypatch.setattr(ops, "free_memory", lambda: 200_000)
    call = {"fit": lambda b: model.fit(x, y, batch_size=b, verbose=0),
            "evaluate": lambda b: model.evaluate(x, y, batch_size=b, verbose=0),
            "predict": lambda b: model.predict(x, batch_size=b)}[loop]
    with pytest.raises(DeviceOutOfMemoryError) as caught:
        call(256)
    error = caught.value
    message = str(error)
    assert f"{loop}() ran out of memory on the host at batch_size=256" in message
    assert "parameters, gradients and optimizer state take" in message and "per example" in message
    per_example = activation_bytes_per_example(model)
    assert error.suggested_batch_size == suggested_batch_size(256, per_example, 200_000) == 64
    assert "Try batch_size=64." in message and "Unable to allocate" in message
    assert released and isinstance(error, MemoryError)
    call(error.suggested_batch_size)  # the process goes on at the suggested size


def test_other_errors_pass_through_unchanged(monkeypatch):
    model = make_model()
    x = np.ones((10, 20), np.float32)
    model.predict(x)
    monkeypatch.setattr(type(model.ops), "matmul", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        model.predict(x)


@pytest.mark.gpu
def test_a_batch_too_large_for_the_gpu_raises_and_a_suggested_one_trains():
    import cupy

    free, _ = cupy.cuda.runtime.memGetInfo()
    units = 4096
    model = make_model("cupy", units=units)
    model.build((20,))
    per_example = activation_bytes_per_example(model)
    batch = int(4 * free // per_example)  # four times what the whole device could hold
    x = cupy.zeros((batch, 20), cupy.float32)
    y = cupy.zeros((batch,), cupy.int64)
    with pytest.raises(DeviceOutOfMemoryError) as caught:
        model.fit(x, y, batch_size=batch, verbose=0)
    error = caught.value
    assert error.suggested_batch_size is not None and error.suggested_batch_size < batch
    assert "ran out of memory on the GPU" in str(error)
    small = error.suggested_batch_size
    model.fit(x[:4 * small], y[:4 * small], batch_size=small, verbose=0)
