"""``tensornet train`` output: Keras' progress default (a bar on a terminal, one line per epoch in
a log) and, where a package is missing, the one line naming the path fit takes and the command
that gets the faster one."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from helpers import write_tiny_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = ["-m", "tensornet", "train", "--epochs", "2", "--hidden", "8", "--batch-size", "16", "--lr", "0.05"]


def _environment(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)
    env.pop("TENSORNET_BACKEND", None)
    return env


def _run_on_a_terminal(arguments, env, timeout=180):
    """Run ``python arguments`` with stdout and stderr on a pseudo-terminal; (status, output)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, *arguments], stdout=follower, stderr=follower,
                               stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=30), b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_the_progress_bar_by_default(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=960)
    status, output = _run_on_a_terminal([*TRAIN, "--data", str(data)], _environment(COLUMNS="100", LINES="30"))
    assert status == 0, output
    assert "%|" in output and "\r" in output, output  # tqdm's bar, redrawn in place
    assert "test accuracy" in output


def test_a_log_gets_one_line_per_epoch_by_default(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train=960)
    done = subprocess.run([sys.executable, *TRAIN, "--data", str(data)], capture_output=True, text=True,
                          env=_environment(), cwd=ROOT, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout and "%|" not in done.stdout
    epochs = [line for line in done.stdout.splitlines() if line.startswith("Epoch ")]
    assert [line.split(" - ")[0] for line in epochs] == ["Epoch 1/2", "Epoch 2/2"]


NO_NUMBA = """
import runpy, sys
sys.modules["numba"] = None  # as on a machine without Numba
sys.argv = ["tensornet", *sys.argv[1:]]
runpy.run_module("tensornet", run_name="__main__")
"""


def test_without_numba_fit_names_its_path_and_the_command_that_gets_the_faster_one(tmp_path):
    data = write_tiny_dataset(tmp_path / "data")
    done = subprocess.run([sys.executable, "-c", NO_NUMBA, *TRAIN[2:], "--data", str(data), "--verbose", "2"],
                          capture_output=True, text=True, env=_environment(), cwd=ROOT, timeout=180)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stdout.splitlines() if line.startswith("tensornet: fit trains")]
    assert notes == [f"tensornet: fit trains on NumPy alone, the layered step without compiled kernels: Numba is "
                     f"not installed; {sys.executable} -m pip install numba gets the compiled CPU kernels"]
    step = [line for line in done.stdout.splitlines() if line.startswith("training step: ")]
    assert step == ["training step: layered (Numba's kernels are not in use (Numba is not installed))"]
