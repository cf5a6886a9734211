"""tensornet.checkpoints and the Checkpoints callback: atomic files, keep-K, newest complete,
and mid-epoch resume that continues bit for bit."""
from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import numpy_backend, stateful_classifier, three_class_data  # noqa: F401 (autouse fixture)
from tensornet.callbacks import Checkpoints, LambdaCallback
from tensornet.checkpoints import CheckpointDirectory, ResumePoint, load_checkpoint, save_checkpoint
from tensornet.optimizers import SGD, Adam
from tensornet.io.archive import read_archive, write_archive
from tensornet.models.history import full_history


class Stop(Exception):
    """Stands for a crash at a chosen step."""


def data(n=203, seed=0):
    return three_class_data(n, seed)


def make_model(optimizer="adam"):
    opt = Adam(1e-2) if optimizer == "adam" else SGD(0.05, momentum=0.9, nesterov=True)
    return stateful_classifier(opt, dropout=0.3, seed=3)


FIT = dict(batch_size=16, epochs=3, verbose=0, validation_split=0.1)


def crash_at(model, step):
    def stop(batch, logs):
        if model.optimizer.iterations == step:
            raise Stop
    return LambdaCallback(on_batch_end=stop)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("crash_step", [1, 5, 12, 17, 30])
@pytest.mark.parametrize("shuffle", [True, False])
def test_resume_from_any_step_equals_the_unbroken_run(tmp_path, optimizer, crash_step, shuffle):
    x, y = data()
    reference = make_model(optimizer)
    ref_history = reference.fit(x, y, shuffle=shuffle, **FIT)

    model = make_model(optimizer)
    with pytest.raises(Stop):
        model.fit(x, y, shuffle=shuffle, callbacks=[Checkpoints(tmp_path, every_steps=1, keep=2),
                                                    crash_at(model, crash_step)], **FIT)
    restored = CheckpointDirectory(tmp_path).restore()
    assert restored.optimizer.iterations == crash_step
    restored.fit(x, y, shuffle=shuffle, initial_epoch=restored.epochs_completed, **FIT)

    for a, b in zip(reference.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(reference.layers[1].get_state_arrays().values(), restored.layers[1].get_state_arrays().values()):
        np.testing.assert_array_equal(a, b)
    logs, epochs = full_history(restored)
    assert epochs == [0, 1, 2]
    assert logs == ref_history.history


def test_checkpoints_every_n_steps_and_epochs_keep_the_newest_k(tmp_path):
    x, y = data()
    model = make_model()
    callback = Checkpoints(tmp_path, every_epochs=2, every_steps=5, keep=3)
    model.fit(x, y, **FIT)  # no checkpoint callback: unaffected
    model.fit(x, y, callbacks=[callback], **{**FIT, "epochs": 6}, initial_epoch=3)
    written_steps = [int(os.path.basename(p)[5:15]) for p in callback.written]
    # The first (step 36) at the start, then every 5 steps, plus the end of epochs 4 and 6 (48, 72).
    assert written_steps[0] == 36
    assert {40, 45, 48, 50, 70, 72} <= set(written_steps)
    names = sorted(os.listdir(tmp_path))
    assert names == ["ckpt-0000000065.npz", "ckpt-0000000070.npz", "ckpt-0000000072.npz"]
    newest = load_checkpoint(tmp_path / names[-1])
    assert newest.epochs_completed == 6 and newest.resume_point is None
    mid = load_checkpoint(tmp_path / names[0])
    assert mid.resume_point.epoch == 5 and mid.resume_point.batch == 5


def test_newest_skips_damaged_checkpoints_and_temporaries_are_removed(tmp_path):
    x, y = data()
    model = make_model()
    model.fit(x, y, callbacks=[Checkpoints(tmp_path, every_steps=4, keep=5)], **FIT)
    paths = CheckpointDirectory(tmp_path).paths()
    raw = bytearray(open(paths[-1], "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(paths[-1], "wb").write(bytes(raw))
    (tmp_path / ".ckpt-0000000099.npz.abc.tmp").write_bytes(b"torn")
    directory = CheckpointDirectory(tmp_path)
    assert directory.removed_temporaries == 1
    assert not list(tmp_path.glob(".ckpt-*"))
    with pytest.warns(RuntimeWarning, match="skipping damaged checkpoint"):
        assert directory.newest() == paths[-2]


def test_restore_from_an_empty_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        CheckpointDirectory(tmp_path).restore()


def test_resume_with_other_data_or_batch_size_is_refused(tmp_path):
    x, y = data()
    model = make_model()
    with pytest.raises(Stop):
        model.fit(x, y, callbacks=[Checkpoints(tmp_path, every_steps=3), crash_at(model, 3)], **FIT)
    restored = CheckpointDirectory(tmp_path).restore()
    with pytest.raises(ValueError, match="batches of 16; this fit has 203 examples in batches of 32"):
        restored.fit(x, y, **{**FIT, "batch_size": 32, "validation_split": 0.0})
    restored = CheckpointDirectory(tmp_path).restore()
    with pytest.warns(RuntimeWarning, match="rest of that epoch is dropped"):
        restored.fit(x, y, **{**FIT, "epochs": 1}, initial_epoch=1)


def test_a_crafted_resume_point_is_rejected(tmp_path):
    x, y = data()
    model = make_model()
    model.fit(x, y, **FIT)
    point = ResumePoint(epoch=1, batch=2, samples=182, batch_size=16, order=np.arange(182)[::-1].copy(),
                        totals={"loss": 1.0, "metrics": [0.5], "samples": 32})
    path = tmp_path / "c.npz"
    save_checkpoint(model, path, point)
    assert load_checkpoint(path).resume_point.order[0] == 181
    header, arrays = read_archive(path)
    arrays["resume/order"] = np.zeros(182, np.int64)
    write_archive(path, header, arrays)
    with pytest.raises(ValueError, match="not a permutation"):
        load_checkpoint(path)
    header["resume"]["batch"] = 99
    arrays["resume/order"] = np.arange(182)
    write_archive(path, header, arrays)
    with pytest.raises(ValueError, match="impossible"):
        load_checkpoint(path)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_checkpoint_arguments_are_checked(tmp_path, bad):
    with pytest.raises(ValueError):
        Checkpoints(tmp_path, every_steps=bad)
    with pytest.raises(ValueError):
        Checkpoints(tmp_path, keep=bad)


def test_a_mismatched_fit_keeps_the_resume_point_and_a_new_directory_starts_from_it(tmp_path):
    x, y = data()
    reference = make_model()
    reference.fit(x, y, **FIT)
    model = make_model()
    with pytest.raises(Stop):
        model.fit(x, y, callbacks=[Checkpoints(tmp_path / "a", every_steps=7), crash_at(model, 7)], **FIT)
    restored = CheckpointDirectory(tmp_path / "a").restore()
    with pytest.raises(ValueError, match="batches of 16"):
        restored.fit(x, y, initial_epoch=restored.epochs_completed, **{**FIT, "batch_size": 8})
    assert restored.resume_point is not None  # still there for the corrected call
    # Continue into a fresh directory; crash right after its first (start-of-training) checkpoint.
    with pytest.raises(Stop):
        restored.fit(x, y, initial_epoch=restored.epochs_completed,
                     callbacks=[Checkpoints(tmp_path / "b", every_epochs=None), crash_at(restored, 8)], **FIT)
    again = CheckpointDirectory(tmp_path / "b").restore()
    assert again.optimizer.iterations == 7 and again.resume_point.batch == 7
    again.fit(x, y, initial_epoch=again.epochs_completed, **FIT)
    for a, b in zip(reference.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
