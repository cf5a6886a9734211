"""Saving, loading and resuming convolutional networks: every image layer (Conv2D with its
arguments, pooling, global pooling, Reshape, BatchNormalization and Dropout on images) rebuilt
from the model file with its configuration, identical predictions, and a resumed run that
continues bit for bit; the fashion_cnn preset round trip."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import numpy_backend  # noqa: F401 (autouse fixture)

from tensornet.layers import (AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                              GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D, Reshape)
from tensornet.models import Sequential, load_model
from tensornet.models.presets import fashion_cnn
from tensornet.optimizers import SGD


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 144), dtype=np.float32), rng.integers(0, 4, n)


def make_cnn(head="flatten"):
    layers = [Reshape((12, 12, 1), input_shape=(144,)),
              Conv2D(6, (3, 2), strides=(1, 2), padding="same", dilation_rate=(2, 1), activation="relu",
                     kernel_initializer="he_uniform", bias_initializer="ones"),
              BatchNormalization(momentum=0.8), MaxPooling2D(2, strides=1, padding="same"),
              Conv2D(5, 3, use_bias=False, activation="tanh"), AveragePooling2D(2), Dropout(0.3)]
    tail = {"flatten": [Flatten()], "gap": [GlobalAveragePooling2D()], "gmp": [GlobalMaxPooling2D(keepdims=True),
                                                                          Flatten()]}[head]
    model = Sequential(layers + tail + [Dense(4, activation="softmax")], seed=5)
    model.compile(optimizer=SGD(lr=0.05, momentum=0.9, nesterov=True), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("head", ["flatten", "gap", "gmp"])
def test_cnn_round_trip(tmp_path, head):
    x, y = data()
    model = make_cnn(head)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "cnn.npz")
    loaded = load_model(tmp_path / "cnn.npz")
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    for ours, theirs in zip(model.layers, loaded.layers):
        assert ours.get_config() == theirs.get_config()
    conv = loaded.layers[1]
    assert (conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate) == ((3, 2), (1, 2), "same", (2, 1))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), loaded.get_weights()))
    np.testing.assert_array_equal(loaded.layers[2].moving_variance, model.layers[2].moving_variance)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_cnn_resume_is_bit_exact(tmp_path):
    x, y = data(seed=1)
    uninterrupted = make_cnn()
    uninterrupted.fit(x, y, batch_size=16, epochs=3, verbose=0)
    first = make_cnn()
    first.fit(x, y, batch_size=16, epochs=2, verbose=0)
    first.save(tmp_path / "cnn.npz")
    resumed = load_model(tmp_path / "cnn.npz")
    resumed.fit(x, y, batch_size=16, epochs=3, verbose=0, initial_epoch=resumed.epochs_completed)
    for a, b in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    for ours, theirs in zip(uninterrupted.layers, resumed.layers):
        for name, value in ours.get_state_arrays().items():
            np.testing.assert_array_equal(theirs.get_state_arrays()[name], value)
    assert resumed.history.history["loss"][-1] == uninterrupted.history.history["loss"][-1]


def test_the_preset_round_trips(tmp_path):
    model = fashion_cnn(seed=2)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert model.count_params() == 315146 and model.output_shape == (10,)
    model.save(tmp_path / "preset.npz")
    loaded = load_model(tmp_path / "preset.npz")
    x = np.random.default_rng(3).random((5, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
