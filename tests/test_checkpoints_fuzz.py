"""Fuzzing the checkpoint loader (tensornet.checkpoints.load_checkpoint and
CheckpointDirectory.newest) with hypothesis, on a checkpoint taken inside an epoch (so it holds
a resume point: position, running totals and the epoch's example order).

Every mutated file either loads (then exactly as saved, resume point included) or raises a
ValueError naming the file, within the same memory bound as the model loader's fuzzing
(tests/test_saving_fuzz.py, whose strategies this reuses); a directory whose newest checkpoint
is damaged restores the previous one.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st

from fuzzing import byte_mutations, report_and_check, run_written, write_archive, write_bytes
from test_saving_fuzz import load_counted, make_model
from tensornet.io import archive
from tensornet.callbacks import Checkpoints, LambdaCallback
from tensornet.checkpoints import CheckpointDirectory, load_checkpoint
from tensornet.utils import to_categorical

BYTE_EXAMPLES = 600
RESUME_EXAMPLES = 300


class Taken:
    """Two checkpoints of one run (steps 5 and 6, both inside epoch 2); the newest one's bytes."""

    def __init__(self, directory):
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(64, 6)).astype("float32"), to_categorical(rng.integers(0, 3, 64), 3)
        model = make_model()

        class Stop(Exception):
            pass

        def stop(batch, logs):
            if model.optimizer.iterations == 6:
                raise Stop

        try:
            model.fit(x, y, epochs=3, batch_size=16, verbose=0,
                      callbacks=[Checkpoints(directory, every_steps=1, keep=2), LambdaCallback(on_batch_end=stop)])
        except Stop:
            pass
        self.directory = directory
        self.older, self.path = CheckpointDirectory(directory).paths()
        self.data = open(self.path, "rb").read()
        self.header, self.arrays = archive.read_archive(self.path)
        self.expected = load_checkpoint(self.path)
        assert self.expected.resume_point.batch == 2 and self.expected.resume_point.order is not None


@pytest.fixture(scope="module")
def taken(tmp_path_factory):
    return Taken(tmp_path_factory.mktemp("checkpoints"))


def check(path, data, counts, expected, exact):
    """load_checkpoint on ``data``: ValueError, or the model and resume point saved (``exact``)."""
    model = load_counted(load_checkpoint, path, data, counts)
    if model is not None and exact:
        for a, b in zip(model.get_weights(), expected.get_weights()):
            assert np.array_equal(a, b)
        got, want = model.resume_point, expected.resume_point
        assert (got.epoch, got.batch, got.totals) == (want.epoch, want.batch, want.totals)
        assert np.array_equal(got.order, want.order)


@st.composite
def resume_edits(draw, header, arrays):
    """The checkpoint's header with its resume point edited, and its arrays with the order edited."""
    header = {**header, "resume": dict(header["resume"], totals=dict(header["resume"]["totals"]))}
    arrays = dict(arrays)
    resume = header["resume"]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(["epoch", "batch", "samples", "batch_size", "shuffled", "totals", "order",
                                    "drop"]))
        value = draw(st.one_of(st.integers(-2**40, 2**40), st.none(), st.text(max_size=3), st.booleans(),
                               st.floats(allow_nan=True), st.lists(st.integers(), max_size=3)))
        if key == "order":
            n = draw(st.sampled_from([0, 1, 63, 64, 65, 10**6]))
            kind = draw(st.sampled_from(["int64", "float32", "uint8", "int16"]))
            arrays["resume/order"] = (np.arange(n)[::-1] % 300).astype(kind) if n < 10**5 else np.zeros(3, kind)
        elif key == "drop":
            arrays.pop("resume/order", None)
        elif key == "totals":
            resume["totals"] = draw(st.sampled_from([value, {"loss": value, "metrics": [value], "samples": 32},
                                                     {"loss": 1.0}]))
        else:
            resume[key] = value
    return header, arrays


def run_bytes(taken, directory, examples=BYTE_EXAMPLES):
    return run_written("checkpoint bytes", byte_mutations(taken.data), directory / "ckpt-0000000006.npz",
                       write_bytes, lambda path, data, counts, _: check(path, data, counts, taken.expected, exact=True),
                       examples)


def run_resume(taken, directory, examples=RESUME_EXAMPLES):
    return run_written("checkpoint resume point", resume_edits(taken.header, taken.arrays),
                       directory / "ckpt-0000000006.npz", write_archive,
                       lambda path, data, counts, _: check(path, data, counts, taken.expected, exact=False), examples)


def test_byte_mutations_of_a_mid_epoch_checkpoint(taken, tmp_path, report_counts):
    counts = run_bytes(taken, tmp_path)
    report_and_check("checkpoint bytes", counts, report_counts)


def test_resume_point_edits_with_a_valid_checksum(taken, tmp_path, report_counts):
    counts = run_resume(taken, tmp_path)
    report_and_check("checkpoint resume point", counts, report_counts)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(taken, tmp_path):
    directory = CheckpointDirectory(tmp_path)
    older = tmp_path / "ckpt-0000000005.npz"
    older.write_bytes(open(taken.older, "rb").read())
    newest = tmp_path / "ckpt-0000000006.npz"
    newest.write_bytes(taken.data[: len(taken.data) // 2])  # torn by a copy outside tensornet
    with pytest.warns(RuntimeWarning, match="skipping damaged checkpoint"):
        model = directory.restore()
    assert model.optimizer.iterations == 5
