"""Graph models in files: the topology as JSON, bit-identical predictions after loading, exact
resume (between epochs and from a mid-epoch checkpoint), the divergence guard, and malformed
topologies refused with the file named."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import numpy_backend  # noqa: F401 (autouse fixture)
from tensornet.callbacks import Checkpoints, LambdaCallback
from tensornet.checkpoints import CheckpointDirectory
from tensornet.errors import DivergenceError
from tensornet.io.archive import read_archive, write_archive
from tensornet.layers import Add, BatchNormalization, Concatenate, Dense, Dropout, Input
from tensornet.models import Model, load_model
from tensornet.models.history import full_history
from tensornet.optimizers import SGD


class Stop(Exception):
    """Stands for a crash at a chosen step."""


def make_model(seed=5):
    image, extra = Input(shape=(8,), name="image"), Input(shape=(3,), name="extra")
    shared = Dense(6, activation="relu", name="shared")
    h = shared(image)
    h2 = shared(Dense(8, activation="tanh", name="lift")(extra))
    s = Add(name="sum")([h, BatchNormalization(name="norm")(h2)])
    cls = Dense(4, activation="softmax", name="cls")(Dropout(0.3, name="drop")(Concatenate(name="join")([s, h])))
    flag = Dense(1, activation="sigmoid", name="flag")(s)
    model = Model(inputs={"image": image, "extra": extra}, outputs={"cls": cls, "flag": flag}, seed=seed)
    model.compile(optimizer=SGD(0.05, momentum=0.9), loss={"cls": "sparse_categorical_crossentropy",
                                                           "flag": "binary_crossentropy"},
                  loss_weights={"cls": 1.0, "flag": 0.4}, metrics={"cls": ["accuracy"], "flag": ["accuracy"]})
    return model


def data(n=90, seed=1):
    rng = np.random.default_rng(seed)
    x = {"image": rng.normal(size=(n, 8)).astype(np.float32), "extra": rng.normal(size=(n, 3)).astype(np.float32)}
    labels = rng.integers(0, 4, n)
    y = {"cls": labels, "flag": (labels >= 2).astype(np.float32)}
    return x, y


FIT = dict(batch_size=16, verbose=0, validation_split=0.2)


def test_the_header_holds_the_topology_and_no_code(tmp_path):
    model = make_model()
    model.save(tmp_path / "m.npz")
    header, _ = read_archive(tmp_path / "m.npz")
    graph = header["model"]["graph"]
    assert header["model"]["class"] == "Model"
    assert graph["structure"] == ["dict", "dict"] and graph["output_names"] == ["cls", "flag"]
    names = [item["config"]["name"] for item in header["model"]["layers"]]
    shared = names.index("shared")
    assert sum(step[0] == shared for step in graph["steps"]) == 2  # one layer, two calls
    json.dumps(header)  # plain JSON throughout


def test_a_loaded_graph_model_predicts_bit_identically_and_resumes_exactly(tmp_path):
    x, y = data()
    model = make_model()
    model.fit(x, y, epochs=2, **FIT)
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    for key, value in model.predict(x).items():
        np.testing.assert_array_equal(value, loaded.predict(x)[key])
    assert model.evaluate(x, y, verbose=0) == loaded.evaluate(x, y, verbose=0)
    h1 = model.fit(x, y, epochs=4, initial_epoch=2, **FIT)
    h2 = loaded.fit(x, y, epochs=4, initial_epoch=loaded.epochs_completed, **FIT)
    assert h1.history == h2.history
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("crash_step", [3, 8])
def test_a_mid_epoch_checkpoint_of_a_graph_model_resumes_bit_for_bit(tmp_path, crash_step):
    x, y = data()
    reference = make_model()
    ref_history = reference.fit(x, y, epochs=3, **FIT)
    model = make_model()

    def stop(batch, logs):
        if model.optimizer.iterations == crash_step:
            raise Stop

    with pytest.raises(Stop):
        model.fit(x, y, epochs=3, callbacks=[Checkpoints(tmp_path, every_steps=1, keep=2),
                                             LambdaCallback(on_batch_end=stop)], **FIT)
    restored = CheckpointDirectory(tmp_path).restore()
    assert restored.optimizer.iterations == crash_step
    restored.fit(x, y, epochs=3, initial_epoch=restored.epochs_completed, **FIT)
    for a, b in zip(reference.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    logs, epochs = full_history(restored)
    assert epochs == [0, 1, 2] and logs == ref_history.history
    assert "val_cls_accuracy" in logs and "flag_loss" in logs


def test_the_divergence_guard_stops_a_graph_model_with_the_last_finite_state(monkeypatch):
    x, y = data()
    model = make_model()
    forward = Dense.forward
    poisoned_step = 4
    saved = {}

    def poisoned_forward(layer, inputs, training=False):
        out = forward(layer, inputs, training)
        if training and layer.name == "lift" and model.optimizer.iterations == poisoned_step:
            out[1, 2] = np.nan
        return out

    def remember(batch, logs):
        if model.optimizer.iterations == poisoned_step:
            saved["weights"] = model.get_weights()

    monkeypatch.setattr(Dense, "forward", poisoned_forward)
    with pytest.raises(DivergenceError) as caught, np.errstate(all="ignore"):
        model.fit(x, y, epochs=2, callbacks=[LambdaCallback(on_batch_end=remember)], **FIT)
    assert model.optimizer.iterations == poisoned_step
    assert "loss" in str(caught.value)
    for a, b in zip(saved["weights"], model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_malformed_topology_is_refused_naming_the_file(tmp_path):
    model = make_model()
    model.save(tmp_path / "m.npz")
    header, arrays = read_archive(tmp_path / "m.npz")
    header["model"]["graph"]["steps"][0][1] = [99]  # reads a tensor nothing makes
    write_archive(tmp_path / "bad.npz", header, arrays)
    with pytest.raises(ValueError, match=r"bad\.npz.*before they are made"):
        load_model(tmp_path / "bad.npz")
    header["model"]["graph"]["steps"][0][0] = 1000
    write_archive(tmp_path / "bad2.npz", header, arrays)
    with pytest.raises(ValueError, match=r"bad2\.npz.*not one of the"):
        load_model(tmp_path / "bad2.npz")


def test_callbacks_monitor_per_output_keys(tmp_path):
    from tensornet.callbacks import CSVLogger, EarlyStopping, ModelCheckpoint

    x, y = data()
    model = make_model()
    seen = []
    stopper = EarlyStopping(monitor="val_cls_loss", patience=0, min_delta=10.0)  # nothing improves by 10
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_flag_accuracy", save_best_only=True)
    history = model.fit(x, y, epochs=5, callbacks=[
        stopper, best, CSVLogger(tmp_path / "log.csv"),
        LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(sorted(logs)))], **FIT)
    assert len(history.history["loss"]) == 2 and stopper.stopped_epoch == 1
    assert seen[0] == sorted(["loss", "cls_loss", "flag_loss", "cls_accuracy", "flag_accuracy", "val_loss",
                              "val_cls_loss", "val_flag_loss", "val_cls_accuracy", "val_flag_accuracy"])
    assert best.mode == "max" and (tmp_path / "best.npz").exists()
    assert load_model(tmp_path / "best.npz").output_names == ["cls", "flag"]
    header = (tmp_path / "log.csv").read_text().splitlines()[0]
    assert "val_flag_accuracy" in header and "cls_loss" in header


def test_several_inputs_larger_than_the_device_are_streamed_like_resident_ones():
    from tensornet.backend import NumpyBackend

    class SmallDevice(NumpyBackend):
        name = "numpy"

        def memory_budget(self):
            return 20_000  # below the inputs' 31.7 kB: fit streams them

    x, y = data()
    x = {key: np.repeat(value, 8, axis=0) for key, value in x.items()}  # 720 x 11 floats: 31.7 kB
    y = {key: np.repeat(value, 8, axis=0) for key, value in y.items()}
    resident, streamed = make_model(), make_model()
    streamed.compile(optimizer=SGD(0.05, momentum=0.9), loss={"cls": "sparse_categorical_crossentropy",
                                                              "flag": "binary_crossentropy"},
                     loss_weights={"cls": 1.0, "flag": 0.4}, metrics={"cls": ["accuracy"], "flag": ["accuracy"]},
                     backend=SmallDevice())
    h1 = resident.fit(x, y, epochs=2, **FIT)
    h2 = streamed.fit(x, y, epochs=2, **FIT)
    assert streamed._trainer._streamed and not resident._trainer._streamed
    assert h1.history == h2.history
    for a, b in zip(resident.get_weights(), streamed.get_weights()):
        np.testing.assert_array_equal(a, b)
