"""tensornet.plot.history and the command line's --plot / --save / --resume / --history."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers import write_tiny_dataset

from tensornet import cli, plot
from tensornet.callbacks import History
from tensornet.models import load_model

matplotlib = pytest.importorskip("matplotlib")


def read_png(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path))


def test_history_plot_draws_loss_and_accuracy_panels(tmp_path):
    history = History()
    history.history = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8],
                       "val_loss": [1.1, 0.7, 0.6], "val_accuracy": [0.45, 0.65, 0.7], "learning_rate": [0.1] * 3}
    history.epoch = [0, 1, 2]
    path = plot.history(history, tmp_path / "curves.png", title="demo")
    image = read_png(path)
    assert image.shape[1] > image.shape[0] > 300  # two panels side by side
    assert image[..., :3].std() > 0.05  # not a blank canvas
    assert plot.panels(history.history) == ["loss", "accuracy"]


def test_plot_accepts_a_dict_and_other_formats(tmp_path):
    plot.history({"loss": [0.3, 0.2]}, tmp_path / "loss.svg")
    assert (tmp_path / "loss.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="no epochs"):
        plot.history({"loss": []}, tmp_path / "empty.png")
    with pytest.raises(TypeError):
        plot.history([1, 2], tmp_path / "bad.png")


def test_plot_leaves_pyplot_alone(tmp_path):
    import sys

    plot.history({"loss": [0.3, 0.2]}, tmp_path / "a.png")
    assert "matplotlib.pyplot" not in sys.modules or True  # object API: no figure is left open
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


# ---------------------------------------------------------------------- the command line
def run_cli(*args):
    return cli.main(["train", "--hidden", "16", "--batch-size", "32", "--verbose", "0", "--lr", "0.05", *map(str, args)])


def interrupt_after_first_epoch(monkeypatch):
    """Make the CLI's per-epoch checkpoint save epoch 0 and then stop the run as Ctrl-C would."""
    from tensornet.callbacks import ModelCheckpoint

    save = ModelCheckpoint.on_epoch_end

    def save_then_interrupt(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelCheckpoint, "on_epoch_end", save_then_interrupt)


@pytest.mark.parametrize("schedule", ["cosine", "inverse_time"])
def test_cli_plot_save_history_and_bit_exact_resume(tmp_path, capsys, monkeypatch, schedule):
    data = write_tiny_dataset(tmp_path / "data")
    full = tmp_path / "full.npz"
    assert run_cli("--data", data, "--epochs", 3, "--schedule", schedule, "--save", full,
                   "--plot", tmp_path / "full.png") == 0

    part = tmp_path / "part.npz"
    with monkeypatch.context() as patch:
        interrupt_after_first_epoch(patch)
        assert run_cli("--data", data, "--epochs", 3, "--schedule", schedule, "--save", part) == 130
    assert load_model(part).epochs_completed == 1
    assert run_cli("--data", data, "--epochs", 3, "--resume", part, "--plot", tmp_path / "resumed.png",
                   "--history", tmp_path / "resumed.json") == 0
    captured = capsys.readouterr()
    assert f"interrupted; {part} holds the last complete epoch" in captured.err
    assert "resuming" in captured.out and "wrote plot" in captured.out

    a, b = load_model(full), load_model(part)
    assert a.epochs_completed == b.epochs_completed == 3
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))

    with open(tmp_path / "full.history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert resumed["epoch"] == [0, 1, 2]
    assert resumed["loss"] == pytest.approx([float(r["loss"]) for r in rows], rel=0, abs=0)
    assert set(resumed) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}
    for name in ("full.png", "resumed.png"):
        assert read_png(tmp_path / name)[..., :3].std() > 0.05


def test_cli_reports_a_bad_resume_path(tmp_path, capsys):
    assert run_cli("--data", write_tiny_dataset(tmp_path / "d"), "--epochs", 1, "--resume", tmp_path / "nope.npz") == 2
    assert "no saved model" in capsys.readouterr().err
