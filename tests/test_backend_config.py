"""Global settings: floatx and deterministic mode; and what deterministic mode promises:
two seeded runs on the same backend give identical weights."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tensornet import Sequential
from tensornet.backend import config, deterministic, set_deterministic
from tensornet.layers import BatchNormalization, Dense, Dropout
from tensornet.utils import set_random_seed


@pytest.fixture
def restore_mode(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(config, "_deterministic", False)


def test_set_deterministic_sets_the_cublas_workspace(restore_mode):
    assert not deterministic()
    set_deterministic(True)
    assert deterministic() and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    set_deterministic(False)
    assert not deterministic()
    with pytest.raises(TypeError):
        set_deterministic("yes")


def test_an_existing_workspace_setting_is_kept(restore_mode, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    set_random_seed(3, deterministic=True)
    assert deterministic() and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def seeded_run(backend):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(700, 30)).astype("float32"), rng.integers(0, 4, 700)
    model = Sequential([Dense(256, activation="relu", input_shape=(30,)), BatchNormalization(), Dropout(0.3),
                        Dense(4, activation="softmax")], seed=5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], backend=backend)
    history = model.fit(x, y, batch_size=64, epochs=3, verbose=0, validation_split=0.2)
    return [np.asarray(model.ops.to_numpy(w)) for w in model.get_weights()], history.history


def test_two_seeded_runs_give_identical_weights_on_the_cpu():
    (a, history_a), (b, history_b) = seeded_run("numpy"), seeded_run("numpy")
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert history_a == history_b


@pytest.mark.gpu
def test_two_seeded_runs_give_identical_weights_on_the_gpu(restore_mode):
    set_deterministic(True)
    (a, history_a), (b, history_b) = seeded_run("cupy"), seeded_run("cupy")
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert history_a == history_b
