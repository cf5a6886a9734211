"""fit's progress output: a redrawn bar on a terminal, one clean line per epoch elsewhere."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tensornet as tn
from tensornet.training import progress
from tensornet.training import epoch as trainer_module
from tensornet.layers import Dense
from tensornet.models import Sequential

tqdm = pytest.importorskip("tqdm")


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def data(n=400):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, tn.utils.to_categorical(rng.integers(0, 3, n), 3)


def make_model():
    model = Sequential([Dense(8, activation="relu", input_shape=(6,)), Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


EPOCH_LINE = re.compile(r"^Epoch (\d+)/3 - 8 steps - [\d.]+s - [\d,]+ samples/s - loss: \d+\.\d{4} - "
                        r"accuracy: \d\.\d{4} - val_loss: \d+\.\d{4} - val_accuracy: \d\.\d{4}$")


@pytest.mark.parametrize("verbose", [1, 2])
def test_pipe_gets_one_clean_line_per_epoch(capsys, verbose):
    x, y = data()
    make_model().fit(x, y, epochs=3, batch_size=40, verbose=verbose, validation_split=0.2)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert len(lines) == 3
    assert [int(EPOCH_LINE.match(line).group(1)) for line in lines] == [1, 2, 3]


def test_terminal_gets_a_bar_redrawn_in_place(monkeypatch):
    x, y = data()
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(progress, "REFRESH_SECONDS", 0.0)  # show the running loss at every redraw
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 0.0)
    make_model().fit(x, y, epochs=3, batch_size=40, verbose=1, validation_split=0.2)
    out = terminal.getvalue()
    assert "\r" in out
    finals = [line.split("\r")[-1] for line in out.split("\n") if line]
    assert len(finals) == 3  # one finished bar per epoch, left on screen
    for epoch, line in enumerate(finals, 1):
        assert line.startswith(f"Epoch {epoch}/3: 100%|")
        assert "320/320" in line and "samples/s" in line
        assert re.search(r"loss: \d\.\d{4} - accuracy: \d\.\d{4} - val_loss: \d\.\d{4} - val_accuracy", line)
    redraws = out.split("\n")[0].split("\r")
    assert len(redraws) > 2 and any("<" in r and "loss:" in r for r in redraws[1:-1])  # ETA and running loss


def test_bar_reads_the_running_loss_at_most_every_refresh_interval(monkeypatch):
    x, y = data(n=2000)
    reads = []
    real = trainer_module.EpochTotals.results
    monkeypatch.setattr(trainer_module.EpochTotals, "results", lambda self, n: (reads.append(1), real(self, n))[1])
    monkeypatch.setattr(sys, "stdout", FakeTerminal())
    monkeypatch.setattr(progress, "REFRESH_SECONDS", 3600.0)
    make_model().fit(x, y, epochs=2, batch_size=10, verbose=1)  # 400 batches
    assert len(reads) == 2  # only the epoch ends: never per step


def test_verbose_2_on_a_terminal_and_verbose_0(monkeypatch, capsys):
    x, y = data()
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    make_model().fit(x, y, epochs=3, batch_size=40, verbose=2, validation_split=0.2)
    assert "\r" not in terminal.getvalue() and len(terminal.getvalue().splitlines()) == 3
    monkeypatch.undo()
    make_model().fit(x, y, epochs=2, batch_size=40, verbose=0)
    assert capsys.readouterr().out == ""


def test_without_tqdm_a_terminal_gets_lines(monkeypatch):
    x, y = data()
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(progress, "_tqdm", lambda: None)
    make_model().fit(x, y, epochs=2, batch_size=40, verbose=1)
    assert "\r" not in terminal.getvalue() and len(terminal.getvalue().splitlines()) == 2


def test_format_logs():
    assert progress.format_logs({"loss": 0.5, "accuracy": 1, "learning_rate": 1e-4, "batch": 3}) == \
        "loss: 0.5000 - accuracy: 1.0000 - learning_rate: 1.0000e-04"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_real_pseudo_terminal(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import tensornet as tn
        from tensornet.layers import Dense
        from tensornet.models import Sequential
        rng = np.random.default_rng(0)
        x = rng.normal(size=(300, 6)).astype("float32")
        y = tn.utils.to_categorical(rng.integers(0, 3, 300), 3)
        model = Sequential([Dense(8, activation="relu", input_shape=(6,)), Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=2, batch_size=30)
    """))
    leader, follower = os.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    out = b"".join(chunks).decode()
    assert "\r" in out and "Epoch 1/2:" in out and "Epoch 2/2:" in out and "samples/s" in out


def test_under_data_parallel_the_bar_names_rank_0s_running_values_and_ends_with_the_global_ones(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(progress, "REFRESH_SECONDS", 0.0)
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 0.0)
    terminal = FakeTerminal()
    logger = progress.ProgressLogger(verbose=1, stream=terminal)
    logger.set_params({"epochs": 1, "steps": 2, "samples": 64})
    logger.set_run(SimpleNamespace(parallel=object()))  # a data-parallel fit
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    logger.on_train_batch_end(0, {"size": 32, "loss": 0.5})
    logger.on_train_batch_end(1, {"size": 32, "loss": 0.25})
    logger.on_epoch_end(0, {"loss": 0.375})
    redraws = terminal.getvalue().split("\n")[0].split("\r")
    assert any("rank 0's rows: loss: 0.5000" in r for r in redraws), redraws
    final = terminal.getvalue().split("\n")[-2].split("\r")[-1]
    assert "loss: 0.3750" in final and "rank 0" not in final  # the epoch's values, over every rank
    logger.set_run(SimpleNamespace(parallel=None))
    logger.on_train_begin()
    assert logger._scope == ""
