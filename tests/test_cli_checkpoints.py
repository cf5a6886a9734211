"""``tensornet train --checkpoint-dir`` / ``--resume DIR`` in real processes: SIGKILL at random
instants, SIGINT, and divergence, each leaving complete checkpoints and nothing lost."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import write_tiny_dataset
from kill_resume import _command, _environment, kill_and_resume
from tensornet import cli
from tensornet.checkpoints import CheckpointDirectory, load_checkpoint
from tensornet.models import load_model

KILLS = int(os.environ.get("TENSORNET_KILL_TEST_KILLS", "20"))


def test_sigkill_at_random_instants_loses_nothing(tmp_path, report_counts):
    report = kill_and_resume(tmp_path, kills=KILLS, seed=1)
    report_counts(report.summary())
    assert report.kills == KILLS
    assert report.corrupt == 0, report.differences
    assert report.identical, report.differences
    assert report.resumes >= 1


WRITER = """
import sys
import numpy as np
from tensornet import Sequential
from tensornet.checkpoints import CheckpointDirectory
from tensornet.layers import Dense
model = Sequential([Dense(1024, input_shape=(1024,)), Dense(1024)], seed=0)
model.compile(optimizer="adam", loss="mse")
model.fit(np.ones((4, 1024), np.float32), np.ones((4, 1024), np.float32), verbose=0)
directory = CheckpointDirectory(sys.argv[1], keep=2)
directory.save(model)  # one complete checkpoint before any kill: a slow disk must not fail the test
print("ready", flush=True)
while True:
    model.optimizer.iterations += 1
    directory.save(model)
"""


def test_sigkill_while_checkpoints_are_being_written_leaves_only_complete_ones(tmp_path, report_counts):
    """A process that does nothing but write 8 MiB checkpoints, killed at random instants: every
    ckpt-*.npz left must load; torn temporaries are counted and cleaned up by the next start."""
    import random

    rng = random.Random(0)
    env = _environment()
    kills = torn = loaded = 0
    for _ in range(8):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
        time.sleep(rng.uniform(0.0, 0.3))
        process.kill()
        process.communicate()
        kills += 1
        torn += len(list(tmp_path.glob(".ckpt-*.tmp")))
        for path in tmp_path.glob("ckpt-*.npz"):
            load_checkpoint(path)
            loaded += 1
        directory = CheckpointDirectory(tmp_path)
        assert not list(tmp_path.glob(".ckpt-*.tmp")) and directory.newest() is not None
    report_counts(f"kill during checkpoint writes: {kills} kills, {loaded} checkpoints loaded, 0 corrupt, "
                  f"{torn} torn temporaries cleaned up")
    assert torn > 0  # the kills did land inside writes


def _wait_for_checkpoints(directory, count, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(directory.glob("ckpt-*.npz"))) >= count:
            return
        time.sleep(0.005)
    raise AssertionError(f"no {count} checkpoints in {directory} (process exit {process.poll()})")


def test_sigint_writes_a_checkpoint_at_the_end_of_the_step_and_exits_cleanly(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=1600, n_test=100)
    env = _environment()
    reference = tmp_path / "reference.npz"
    subprocess.run(_command(data, tmp_path / "ref", reference, resume=False), env=env, check=True,
                   capture_output=True, timeout=300)

    directory, final = tmp_path / "run", tmp_path / "final.npz"
    process = subprocess.Popen(_command(data, directory, final, resume=False), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoints(directory, 2, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted by SIGINT after epoch" in err and "checkpoint written to" in err
    assert f"--resume {directory}" in err
    written = err.split("checkpoint written to ")[1].split(";")[0].strip()
    model = load_checkpoint(written)
    assert model.resume_point is not None and model.optimizer.iterations > 0

    subprocess.run(_command(data, directory, final, resume=True), env=env, check=True, capture_output=True,
                   timeout=300)
    a, b = load_model(reference), load_model(final)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_divergence_stops_with_the_step_named_and_the_last_checkpoint_intact(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data")
    directory = tmp_path / "run"
    status = cli.main(["train", "--data", str(data), "--epochs", "2", "--hidden", "16", "--batch-size", "32",
                       "--verbose", "0", "--lr", "1e30", "--checkpoint-dir", str(directory)])
    err = capsys.readouterr().err
    assert status == 3, err
    assert "training diverged at epoch 1, batch" in err and "is intact" in err
    newest = CheckpointDirectory(directory).newest()
    model = load_checkpoint(newest)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_a_fresh_run_refuses_a_directory_holding_another_runs_checkpoints(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data")
    args = ["train", "--data", str(data), "--epochs", "1", "--hidden", "8", "--verbose", "0",
            "--checkpoint-dir", str(tmp_path / "run")]
    assert cli.main(args) == 0
    assert cli.main(args) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert cli.main(["train", "--data", str(data), "--epochs", "2", "--hidden", "8", "--verbose", "0",
                     "--resume", str(tmp_path / "run")]) == 0
    assert load_checkpoint(CheckpointDirectory(tmp_path / "run").newest()).epochs_completed == 2


def test_resume_from_an_empty_directory_says_so(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    assert cli.main(["train", "--data", str(data), "--verbose", "0", "--resume", str(tmp_path / "empty")]) == 2
    assert "holds no complete checkpoint" in capsys.readouterr().err


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-s"]))
