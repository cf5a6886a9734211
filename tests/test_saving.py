"""model.save / load_model: what is kept, bit-exact resume, atomic write, checksum, no pickle."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import tensornet as tn
from tensornet import schedules
from tensornet.io import archive
from tensornet.callbacks import ModelCheckpoint
from tensornet.layers import Activation, Dense, Dropout, Flatten
from tensornet.models import Sequential, load_model
from tensornet.optimizers import SGD, Adam, Nadam, RMSprop

OPTIMIZERS = ["sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam"]


def data(n=300, features=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = tn.utils.to_categorical(rng.integers(0, classes, n), classes)
    return x, y


def make_model(optimizer="adam", seed=1, dtype=None):
    model = Sequential([Dense(24, activation="relu", input_shape=(12,)), Dropout(0.3),
                        Dense(16, activation="tanh"), Dropout(0.2, seed=7), Dense(3, activation="softmax")],
                       seed=seed, dtype=dtype)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights())) and \
        len(a.get_weights()) == len(b.get_weights())


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_resume_is_bit_exact(tmp_path, optimizer):
    x, y = data()
    uninterrupted = make_model(optimizer)
    uninterrupted.fit(x, y, epochs=3, batch_size=32, verbose=0)

    first = make_model(optimizer)
    first.fit(x, y, epochs=2, batch_size=32, verbose=0)
    path = tmp_path / "model.npz"
    first.save(path)
    resumed = load_model(path)
    assert resumed.epochs_completed == 2
    resumed.fit(x, y, epochs=3, batch_size=32, verbose=0, initial_epoch=resumed.epochs_completed)
    assert same_weights(uninterrupted, resumed)
    assert resumed.optimizer.iterations == uninterrupted.optimizer.iterations
    for key, buffer in uninterrupted.optimizer.get_state(uninterrupted.ops)["buffers"].items():
        assert np.array_equal(buffer, resumed.optimizer.get_state(resumed.ops)["buffers"][key])


def test_resume_bit_exact_with_schedule_clipping_and_lr_change(tmp_path):
    x, y = data()

    def build():
        opt = SGD(learning_rate=schedules.ExponentialDecay(0.05, 7, 0.9), momentum=0.9, nesterov=True,
                  clipnorm=0.5)
        return make_model(opt)

    a = build()
    a.fit(x, y, epochs=1, batch_size=32, verbose=0)
    a.optimizer.learning_rate = 0.01  # scales the decaying schedule from here on
    a.fit(x, y, epochs=3, batch_size=32, verbose=0, initial_epoch=1)

    b = build()
    b.fit(x, y, epochs=1, batch_size=32, verbose=0)
    b.optimizer.learning_rate = 0.01
    b.fit(x, y, epochs=2, batch_size=32, verbose=0, initial_epoch=1)
    b.save(tmp_path / "m.npz")
    c = load_model(tmp_path / "m.npz")
    assert c.optimizer.lr_multiplier == b.optimizer.lr_multiplier != 1.0
    assert isinstance(c.optimizer.schedule, schedules.ExponentialDecay)
    assert c.optimizer.clipnorm == 0.5 and c.optimizer.nesterov and c.optimizer.momentum == 0.9
    c.fit(x, y, epochs=3, batch_size=32, verbose=0, initial_epoch=c.epochs_completed)
    assert same_weights(a, c)


def test_save_load_identical_predictions_and_architecture(tmp_path):
    x, y = data()
    model = Sequential([Flatten(input_shape=(3, 4)), Dense(8, activation="leaky_relu"), Activation("tanh"),
                        Dense(3, activation="softmax", kernel_initializer="he_normal")], seed=3, name="net")
    model.compile(optimizer=RMSprop(learning_rate=0.002, rho=0.8, momentum=0.5, centered=True),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    x3 = x.reshape(-1, 3, 4)
    model.fit(x3, y, epochs=2, batch_size=50, verbose=0)
    model.save(tmp_path / "net.npz")
    loaded = load_model(tmp_path / "net.npz")
    assert np.array_equal(model.predict(x3), loaded.predict(x3))
    assert [type(layer).__name__ for layer in loaded.layers] == ["Flatten", "Dense", "Activation", "Dense"]
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.name == "net" and loaded.seed == 3
    opt = loaded.optimizer
    assert isinstance(opt, RMSprop) and (opt.rho, opt.momentum, opt.centered) == (0.8, 0.5, True)
    assert opt.learning_rate == pytest.approx(0.002)
    assert loaded.loss.name == "categorical_crossentropy"
    assert loaded.evaluate(x3, y, verbose=0) == model.evaluate(x3, y, verbose=0)
    assert loaded.history.history["loss"] == model.history.history["loss"]


def test_float64_model_and_nadam_scalar_state(tmp_path):
    x, y = data()
    model = make_model(Nadam(), dtype="float64")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.dtype == "float64" and loaded.get_weights()[0].dtype == np.float64
    assert loaded.optimizer.mu_product == model.optimizer.mu_product


def test_file_is_npz_without_pickles_and_json_header(tmp_path):
    model = make_model()
    model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as archive:
        names = archive.namelist()
    assert all(name.endswith(".npy") for name in names)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes())
        assert all(archive[name].dtype != object for name in archive.files)
    assert header["format"] == "tensornet.model" and header["kind"] == "model"
    assert header["optimizer"]["class"] == "Adam"
    assert [layer["class"] for layer in header["model"]["layers"]] == ["Dense", "Dropout", "Dense", "Dropout",
                                                                       "Dense"]


def test_checksum_detects_a_changed_weight(tmp_path):
    model = make_model()
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as archive:
        members = {name: archive[name].copy() for name in archive.files}
    members["weights/0"][0, 0] += 1.0
    with open(path, "wb") as handle:
        np.savez(handle, **members)
    with pytest.raises(ValueError, match="checksum"):
        load_model(path)


def test_damaged_and_missing_files_are_clear_errors(tmp_path):
    model = make_model()
    path = tmp_path / "m.npz"
    model.save(path)
    data_bytes = path.read_bytes()
    path.write_bytes(data_bytes[: len(data_bytes) // 2])
    with pytest.raises(ValueError, match="damaged|not a tensornet"):
        load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a tensornet model"):
        load_model(tmp_path / "other.npz")


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    model = make_model()
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(archive.numpy, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # and no temporary is left behind


def test_atomic_write_fsyncs_then_renames(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(archive.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(archive.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    make_model().save(tmp_path / "m.npz")
    assert calls[0] == "fsync" and "replace" in calls and calls.index("replace") > 0


def test_overwrite_false_refuses(tmp_path):
    model = make_model()
    model.save(tmp_path / "m.npz")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.npz", overwrite=False)


def test_lambda_schedule_needs_custom_objects(tmp_path):
    def warmup(step):
        return 0.01 * min(1.0, (step + 1) / 10)

    model = make_model(Adam(learning_rate=warmup))
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="custom_objects"):
        load_model(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz", custom_objects={"warmup": warmup})
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate


def test_uncompiled_and_unbuilt_models_round_trip(tmp_path):
    unbuilt = Sequential([Dense(4), Dense(2)])
    unbuilt.save(tmp_path / "u.npz")
    loaded = load_model(tmp_path / "u.npz")
    assert not loaded.built and not loaded.compiled and len(loaded.layers) == 2
    built = Sequential([Dense(4, input_shape=(3,)), Dense(2)], seed=0)
    built.build()
    built.save(tmp_path / "b.npz")
    loaded = load_model(tmp_path / "b.npz")
    assert same_weights(built, loaded) and not loaded.compiled


def test_save_weights_and_load_weights(tmp_path):
    a, b = make_model(seed=1), make_model(seed=2)
    assert not same_weights(a, b)
    a.save_weights(tmp_path / "w.npz")
    b.load_weights(tmp_path / "w.npz")
    assert same_weights(a, b)
    with pytest.raises(ValueError, match="weights only"):
        load_model(tmp_path / "w.npz")


def test_model_checkpoint_resume_continues_an_interrupted_run(tmp_path):
    x, y = data()
    full = make_model("rmsprop")
    full.fit(x, y, epochs=4, batch_size=32, verbose=0, validation_split=0.2)

    class Interrupt(Exception):
        pass

    def crash(epoch, logs):
        if epoch == 1:
            raise Interrupt

    from tensornet.callbacks import LambdaCallback

    path = tmp_path / "ckpt.npz"
    interrupted = make_model("rmsprop")
    with pytest.raises(Interrupt):
        interrupted.fit(x, y, epochs=4, batch_size=32, verbose=0, validation_split=0.2,
                        callbacks=[ModelCheckpoint(path), LambdaCallback(on_epoch_end=crash)])
    resumed = load_model(path)
    assert resumed.epochs_completed == 2
    resumed.fit(x, y, epochs=4, batch_size=32, verbose=0, validation_split=0.2,
                initial_epoch=resumed.epochs_completed)
    assert same_weights(full, resumed)
