"""Kill-and-resume harness: SIGKILL ``tensornet train`` at random instants, resume it from its
checkpoint directory each time, and compare the result with an uninterrupted run.

Used by ``tests/test_cli_checkpoints.py`` (CI's quick mode: 20 kills) and by
``bench/kill_resume.py`` (as many kills as asked). The run trains a small MLP on a tiny
Fashion-MNIST-shaped data set, checkpointing every few steps, so kills land during start-up,
training, validation and checkpoint writes alike.

After every kill each ``ckpt-*.npz`` in the directory must load with its checksum verified
(a failure counts as a corrupt checkpoint); temporaries a kill cut short are counted as torn
and are removed by the next run. At the end the killed-and-resumed run's final weights,
optimizer state, step count and per-epoch history must equal the uninterrupted run's.
"""
from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from helpers import write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
TRAIN_ARGS = ("--epochs", "5", "--hidden", "256", "--batch-size", "32", "--verbose", "0", "--lr", "0.05",
              "--validation-split", "0.1", "--checkpoint-every-steps", "4", "--keep-checkpoints", "2")


@dataclasses.dataclass
class KillReport:
    kills: int = 0
    kills_after_progress: int = 0
    resumes: int = 0
    fresh_starts: int = 0
    corrupt: int = 0
    torn_temporaries: int = 0
    checkpoints_checked: int = 0
    identical: bool = False
    differences: list = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        return (f"kill test: {self.kills} kills ({self.kills_after_progress} after the run had written a new "
                f"checkpoint), {self.resumes} resumes, {self.fresh_starts} fresh starts, "
                f"{self.checkpoints_checked} checkpoint loads checked, {self.corrupt} corrupt checkpoints, "
                f"{self.torn_temporaries} torn temporaries cleaned up, final state identical to the "
                f"uninterrupted run: {self.identical}")


def _command(data, checkpoint_dir, final, resume):
    where = ("--resume", str(checkpoint_dir)) if resume else ("--checkpoint-dir", str(checkpoint_dir))
    return [sys.executable, "-m", "tensornet", "train", "--data", str(data), *TRAIN_ARGS, *where,
            "--save", str(final)]


def _environment():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    env["TENSORNET_BACKEND"] = "numpy"
    return env


def _checkpoints(directory):
    return sorted(directory.glob("ckpt-*.npz")) if directory.exists() else []


def _check_directory(directory, report):
    """Every checkpoint must load (checksum verified); count torn temporaries."""
    from tensornet.checkpoints import load_checkpoint

    for path in _checkpoints(directory):
        report.checkpoints_checked += 1
        try:
            load_checkpoint(path)
        except (ValueError, OSError) as exc:
            report.corrupt += 1
            report.differences.append(f"corrupt {path.name}: {exc}")
    report.torn_temporaries += sum(1 for _ in directory.glob(".ckpt-*.tmp")) if directory.exists() else 0


def _compare(reference, result, report):
    """Weights, optimizer state, step count and history of two saved models, bit for bit."""
    from tensornet.io.archive import read_archive
    from tensornet.models.history import full_history
    from tensornet.models import load_model

    a, b = load_model(reference), load_model(result)
    if a.optimizer.iterations != b.optimizer.iterations or a.epochs_completed != b.epochs_completed:
        report.differences.append(f"steps {a.optimizer.iterations} vs {b.optimizer.iterations}, epochs "
                                  f"{a.epochs_completed} vs {b.epochs_completed}")
    _, arrays_a = read_archive(reference)
    _, arrays_b = read_archive(result)
    for name in sorted(set(arrays_a) | set(arrays_b)):
        if name not in arrays_a or name not in arrays_b or not np.array_equal(arrays_a[name], arrays_b[name]):
            report.differences.append(f"array {name} differs")
    if full_history(a) != full_history(b):
        report.differences.append(f"history differs: {full_history(a)} vs {full_history(b)}")
    report.identical = not report.differences


def _run(command, env, timeout):
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr}")
    return completed


def kill_and_resume(workdir, kills=20, seed=0, timeout=300) -> KillReport:
    """Run the experiment in ``workdir`` (see the module docstring) and return its counts."""
    workdir = Path(workdir)
    data = write_tiny_dataset(workdir / "data", n_train=3200, n_test=100, seed=seed)
    env = _environment()
    report = KillReport()
    rng = random.Random(seed)

    reference_dir, reference = workdir / "reference", workdir / "reference.npz"
    started = time.perf_counter()
    process = subprocess.Popen(_command(data, reference_dir, reference, resume=False), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Start-up ends when the first checkpoint after a training step appears (the one written at
    # the start of training comes before the first step's one-off costs).
    while len(_checkpoints(reference_dir)) < 2 and process.poll() is None:
        time.sleep(0.002)
    startup = time.perf_counter() - started
    _, stderr = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise AssertionError(f"the uninterrupted run failed:\n{stderr}")
    training = max(time.perf_counter() - started - startup, 0.1)

    directory, final = workdir / "killed", workdir / "killed.npz"
    while report.kills < kills:
        before = _checkpoints(directory)
        resume = bool(before)
        process = subprocess.Popen(_command(data, directory, final, resume), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        report.resumes += resume
        report.fresh_starts += not resume
        # A quarter of the kills land anywhere in start-up (imports, loading, restoring); the rest
        # land in training, validation and checkpoint writes, spread so that each run makes
        # some progress and the kills cover the whole run.
        if rng.random() < 0.25:
            delay = rng.uniform(0.0, startup)
        else:
            delay = startup + rng.uniform(0.0, 5.0 * training / kills)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            report.kills += 1
            report.kills_after_progress += _checkpoints(directory)[-1:] != before[-1:]
        else:
            stderr = process.stderr.read()
            if process.returncode != 0:
                raise AssertionError(f"a resumed run failed ({process.returncode}):\n{stderr}")
            if not final.exists():
                raise AssertionError("a run finished without writing its final model")
            final.unlink()  # finished before the kill: start over so all kills hit a live run
            for path in _checkpoints(directory):
                path.unlink()
        finally:
            process.stderr.close()
        _check_directory(directory, report)

    resume = bool(_checkpoints(directory))
    _run(_command(data, directory, final, resume), env, timeout)
    report.resumes += resume
    report.fresh_starts += not resume
    _check_directory(directory, report)
    _compare(reference, final, report)
    return report
