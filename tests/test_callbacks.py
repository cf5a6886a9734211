"""Each callback's effect on a real fit, with Keras' semantics."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

import tensornet as tn
from tensornet.training import epoch as trainer_module
from tensornet.callbacks import (BatchLogs, Callback, CallbackList, CSVLogger, EarlyStopping, History,
                                 LambdaCallback, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau,
                                 TerminateOnNaN)
from tensornet.layers import Dense
from tensornet.models import Sequential, load_model
from tensornet.optimizers import SGD


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = tn.utils.to_categorical(rng.integers(0, 3, n), 3)
    return x, y


def make_model(optimizer=None, seed=0):
    model = Sequential([Dense(8, activation="relu", input_shape=(6,)), Dense(3, activation="softmax")], seed=seed)
    model.compile(optimizer=optimizer or SGD(lr=0.05), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def inject(key, values):
    """A callback that overwrites ``logs[key]`` with values[epoch] (callbacks after it see it)."""
    return LambdaCallback(on_epoch_end=lambda epoch, logs: logs.__setitem__(key, values[epoch]))


def test_history_records_every_epoch_and_key():
    x, y = data()
    model = make_model()
    history = model.fit(x, y, epochs=3, batch_size=50, verbose=0, validation_split=0.25)
    assert isinstance(history, History) and history.epoch == [0, 1, 2]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())


# ---------------------------------------------------------------------- EarlyStopping
def test_early_stopping_patience_and_min_delta():
    x, y = data()
    values = [1.0, 0.9, 0.89, 0.95, 0.88, 0.5, 0.4]  # 0.89 and 0.88 improve by < min_delta=0.05
    stopper = EarlyStopping(monitor="score", patience=2, min_delta=0.05)
    history = make_model().fit(x, y, epochs=7, batch_size=50, verbose=0, callbacks=[inject("score", values), stopper])
    # best 0.9 at epoch 1; epochs 2 and 3 fail to improve by 0.05 -> stop after epoch 3
    assert history.epoch == [0, 1, 2, 3] and stopper.stopped_epoch == 3 and stopper.best == 0.9


def test_early_stopping_mode_max_for_accuracy_and_restore_best_weights():
    x, y = data()
    values = [0.5, 0.8, 0.7, 0.6, 0.9]
    snapshots = []
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    stopper = EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    model = make_model()
    history = model.fit(x, y, epochs=5, batch_size=50, verbose=0,
                        callbacks=[inject("val_accuracy", values), record, stopper])
    assert stopper.mode == "max" and history.epoch == [0, 1, 2, 3]
    assert stopper.best_epoch == 1
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), snapshots[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(snapshots[3], snapshots[1]))


def test_early_stopping_baseline_and_missing_monitor():
    x, y = data()
    stopper = EarlyStopping(monitor="score", patience=1, baseline=0.1)  # never beaten: stop at epoch 1
    history = make_model().fit(x, y, epochs=5, batch_size=50, verbose=0,
                               callbacks=[inject("score", [0.5, 0.4, 0.3, 0.2, 0.1]), stopper])
    assert history.epoch == [0, 1]
    with pytest.warns(RuntimeWarning, match="not in the logs"):
        make_model().fit(x, y, epochs=1, batch_size=50, verbose=0, callbacks=[EarlyStopping(monitor="nope")])


# ---------------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_every_epoch_with_formatted_names(tmp_path):
    x, y = data()
    model = make_model()
    model.fit(x, y, epochs=3, batch_size=50, verbose=0,
              callbacks=[ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{loss:.3f}.npz"))])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and names[0].startswith("m-01-") and names[2].startswith("m-03-")
    last = load_model(tmp_path / names[2])
    assert last.epochs_completed == 3
    assert all(np.array_equal(a, b) for a, b in zip(last.get_weights(), model.get_weights()))


def test_model_checkpoint_save_best_only(tmp_path):
    x, y = data()
    path = tmp_path / "best.npz"
    saved_at = []
    values = [1.0, 0.7, 0.8, 0.6, 0.65]
    model = make_model()
    checkpoint = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    watch = LambdaCallback(on_epoch_end=lambda epoch, logs: saved_at.append(load_model(path).epochs_completed))
    model.fit(x, y, epochs=5, batch_size=50, verbose=0, callbacks=[inject("val_loss", values), checkpoint, watch])
    assert saved_at == [1, 2, 2, 4, 4] and checkpoint.best == 0.6


def test_model_checkpoint_weights_only(tmp_path):
    x, y = data()
    model = make_model()
    model.fit(x, y, epochs=1, batch_size=50, verbose=0,
              callbacks=[ModelCheckpoint(tmp_path / "w.npz", save_weights_only=True)])
    other = make_model(seed=9)
    other.load_weights(tmp_path / "w.npz")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))


# ---------------------------------------------------------------------- learning-rate callbacks
def test_learning_rate_scheduler_sets_the_rate_each_epoch_and_logs_it():
    x, y = data()
    seen = []
    model = make_model(SGD(lr=0.1))
    scheduler = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    probe = LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(model.optimizer.learning_rate))
    history = model.fit(x, y, epochs=3, batch_size=50, verbose=0, callbacks=[scheduler, probe])
    assert seen == [0.1, 0.05, 0.025]
    assert history.history["learning_rate"] == [0.1, 0.05, 0.025]


def test_learning_rate_scheduler_rate_really_drives_the_update():
    x, y = data()
    model = make_model(SGD(lr=0.1))
    before = []
    model.fit(x, y, epochs=2, batch_size=50, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch: 0.0 if epoch == 1 else 0.1),
                         LambdaCallback(on_epoch_begin=lambda e, logs: before.append(model.get_weights()))])
    after = model.get_weights()
    assert not np.array_equal(before[0][0], before[1][0])  # epoch 0 trained at 0.1
    assert all(np.array_equal(a, b) for a, b in zip(before[1], after))  # epoch 1 at lr 0: no change


def test_learning_rate_scheduler_rejects_bad_values():
    x, y = data()
    with pytest.raises(ValueError, match="schedule returned"):
        make_model().fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e: float("nan"))])


def test_reduce_lr_on_plateau_patience_cooldown_and_floor():
    x, y = data()
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    seen = []
    model = make_model(SGD(lr=0.1))
    reducer = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=2, min_lr=0.02)
    probe = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.optimizer.learning_rate))
    history = model.fit(x, y, epochs=8, batch_size=50, verbose=0, callbacks=[inject("val_loss", values), reducer, probe])
    # Keras' order: epoch 0 improves (from inf); waits 1, 2 -> reduce at epoch 2 (cooldown 2); epoch 3 cools
    # down; epoch 4 ends the cooldown and counts wait 1; epoch 5 wait 2 -> reduce; 6 cools down; 7 waits 1.
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    with pytest.raises(ValueError):
        ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_on_plateau_min_lr_floor():
    x, y = data()
    model = make_model(SGD(lr=0.1))
    reducer = ReduceLROnPlateau(monitor="score", factor=0.1, patience=0, min_lr=0.03, min_delta=10)
    model.fit(x, y, epochs=3, batch_size=50, verbose=0, callbacks=[inject("score", [1, 1, 1]), reducer])
    assert model.optimizer.learning_rate == pytest.approx(0.03)


def test_setting_the_rate_of_a_decaying_schedule_scales_it():
    opt = SGD(lr=0.1, decay=0.5)
    opt.iterations = 2  # schedule: 0.1 / (1 + 0.5 * 2) = 0.05
    opt.learning_rate = 0.01
    assert opt.learning_rate == pytest.approx(0.01)
    opt.iterations = 4  # shape kept: 0.1 / 3 * 0.2
    assert opt.learning_rate == pytest.approx(0.1 / 3 * 0.2)


# ---------------------------------------------------------------------- CSVLogger
def test_csv_logger_rows_and_append(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    model = make_model()
    history = model.fit(x, y, epochs=2, batch_size=50, verbose=0, validation_split=0.2, callbacks=[CSVLogger(path)])
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert [float(r["loss"]) for r in rows] == pytest.approx(history.history["loss"])
    model.fit(x, y, epochs=3, initial_epoch=2, batch_size=50, verbose=0, validation_split=0.2,
              callbacks=[CSVLogger(path, append=True)])
    with open(path, newline="") as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,") and lines[3].startswith("2,")


# ---------------------------------------------------------------------- TerminateOnNaN
def test_terminate_on_nan_stops_at_the_diverging_batch(capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype("float32") * 100
    y = rng.normal(size=(400, 1)).astype("float32") * 100
    model = Sequential([Dense(16, activation="relu", input_shape=(6,)), Dense(1)], seed=0)
    model.compile(optimizer=SGD(lr=1e3), loss="mse")
    batches = []
    with np.errstate(all="ignore"):
        history = model.fit(x, y, epochs=5, batch_size=10, verbose=0,
                            callbacks=[TerminateOnNaN(), LambdaCallback(on_batch_end=lambda b, logs: batches.append(b))])
    assert model.stop_training and len(history.epoch) == 1
    assert len(batches) < 40  # stopped inside the first epoch
    assert not math.isfinite(history.history["loss"][0])
    assert "Invalid loss, terminating training" in capsys.readouterr().out


# ---------------------------------------------------------------------- LambdaCallback and hooks
def test_lambda_callback_hooks_order_and_batch_logs():
    x, y = data(n=120)
    events = []
    batch_losses = []
    cb = LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(f"epoch_begin {epoch}"),
        on_train_batch_begin=lambda batch, logs: events.append(f"batch_begin {batch}"),
        on_batch_end=lambda batch, logs: batch_losses.append((batch, logs["size"], logs["loss"], logs["accuracy"])),
        on_epoch_end=lambda epoch, logs: events.append(f"epoch_end {epoch} {sorted(logs)}"),
        on_train_end=lambda logs: events.append("train_end"))
    history = make_model().fit(x, y, epochs=2, batch_size=50, verbose=0, callbacks=[cb])
    assert events[0] == "train_begin" and events[-1] == "train_end"
    assert events[1:5] == ["epoch_begin 0", "batch_begin 0", "batch_begin 1", "batch_begin 2"]
    assert events[5] == "epoch_end 0 ['accuracy', 'loss']"
    assert [b[:2] for b in batch_losses[:3]] == [(0, 50), (1, 50), (2, 20)]
    # batch logs hold running means over the epoch: the last batch's equal the epoch's logs
    assert batch_losses[2][2] == pytest.approx(history.history["loss"][0])
    assert batch_losses[2][3] == pytest.approx(history.history["accuracy"][0])
    with pytest.raises(TypeError):
        LambdaCallback(on_nothing=lambda: None)


class _CountingTotals:
    metrics = []

    def __init__(self):
        self.reads = 0

    def results(self, output_size):
        self.reads += 1
        return {"loss": 0.5}


def test_batch_logs_read_the_device_lazily_and_once():
    totals = _CountingTotals()
    logs = BatchLogs(3, 32, totals, 10)
    assert logs["batch"] == 3 and logs["size"] == 32 and totals.reads == 0
    assert "loss" in logs and totals.reads == 0
    assert logs["loss"] == 0.5 and logs.get("loss") == 0.5 and dict(logs)["loss"] == 0.5
    assert totals.reads == 1
    logs["extra"] = 1
    assert logs["extra"] == 1 and len(logs) == 4


def test_no_batch_hooks_and_no_per_batch_reads_without_batch_callbacks(monkeypatch):
    x, y = data()
    reads = []
    real = trainer_module.EpochTotals.results
    monkeypatch.setattr(trainer_module.EpochTotals, "results", lambda self, n: (reads.append(1), real(self, n))[1])
    assert not CallbackList([History(), EarlyStopping()], None, {}).wants_batch_hooks
    assert CallbackList([LambdaCallback(on_batch_end=lambda b, l: None)], None, {}).wants_batch_hooks
    make_model().fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[EarlyStopping(monitor="loss")])
    assert len(reads) == 2  # once per epoch, not per batch (20 batches)
    reads.clear()
    make_model().fit(x, y, epochs=2, batch_size=10, verbose=0,
                     callbacks=[LambdaCallback(on_batch_end=lambda b, logs: logs["size"])])
    assert len(reads) == 2  # batch hooks that never read the loss cost no device read


def test_callbacks_must_be_callback_instances():
    x, y = data()
    with pytest.raises(TypeError, match="Callback"):
        make_model().fit(x, y, epochs=1, verbose=0, callbacks=[lambda: None])
    assert issubclass(TerminateOnNaN, Callback)
