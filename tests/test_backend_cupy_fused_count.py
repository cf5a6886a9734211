"""The accuracy metric of a softmax + (sparse) categorical cross-entropy model is counted by the
loss op in the same pass (``softmax_cross_entropy_count``; one kernel on the CuPy backend), not
by a separate ``count_correct``; the epoch's accuracy is unchanged."""
from __future__ import annotations

import numpy as np
import pytest

from tensornet import Sequential
from tensornet.backend import NumpyBackend
from tensornet.layers import Dense


def fit_counting(loss, labels, monkeypatch, metrics=("accuracy",)):
    calls = {"count_correct": 0, "softmax_cross_entropy_count": 0}
    backend = NumpyBackend()
    for name in calls:
        original = getattr(backend, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(backend, name, counting)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    model = Sequential(seed=1)
    model.add(Dense(5, activation="relu", input_shape=(6,)))
    model.add(Dense(4, activation="softmax"))
    model.compile(optimizer="sgd", loss=loss, metrics=list(metrics), backend=backend, jit_compile=False)
    history = model.fit(x, labels(rng), batch_size=8, epochs=1, verbose=0, shuffle=False)
    return model, history, calls, x


@pytest.mark.parametrize("loss, labels", [
    ("sparse_categorical_crossentropy", lambda rng: rng.integers(0, 4, 50)),
    ("categorical_crossentropy", lambda rng: np.eye(4, dtype=np.float32)[rng.integers(0, 4, 50)]),
])
def test_training_accuracy_comes_from_the_loss_pass(loss, labels, monkeypatch):
    model, history, calls, _ = fit_counting(loss, labels, monkeypatch)
    steps = -(-50 // 8)
    assert calls == {"count_correct": steps, "softmax_cross_entropy_count": steps}, calls
    # The count is the reference's: compare against a model trained the same way without it.
    reference = Sequential(seed=1)
    reference.add(Dense(5, activation="relu", input_shape=(6,)))
    reference.add(Dense(4, activation="softmax"))
    reference.compile(optimizer="sgd", loss=loss, metrics=["accuracy"], backend="numpy", jit_compile=False)
    reference.counted_metric = None  # force the separate metric pass
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    expected = reference.fit(x, labels(rng), batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert history.history["accuracy"] == expected.history["accuracy"]
    assert history.history["loss"] == pytest.approx(expected.history["loss"], rel=1e-6)


def test_without_accuracy_no_count_is_made(monkeypatch):
    _, _, calls, _ = fit_counting("sparse_categorical_crossentropy", lambda rng: rng.integers(0, 4, 50),
                                  monkeypatch, metrics=())
    assert calls == {"count_correct": 0, "softmax_cross_entropy_count": 0}
