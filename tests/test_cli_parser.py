"""The command line's parser: ``--version``, a help line and a default for every option, help
without raw markup, and every bad value refused before any data loads with one line on stderr
and exit status 2."""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tensornet
from tensornet import cli
from tensornet.cli import parser as cli_parser
from tensornet.cli import train as cli_train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if the command reaches the data set."""
    def load(*_):
        raise AssertionError("the data set was loaded before the arguments were checked")

    monkeypatch.setattr(cli_train, "load", load)


def _bad(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    missing = tmp_path / "missing"
    return [
        (["--batch-size", "0"], "--batch-size"), (["--batch-size", "-3"], "--batch-size"),
        (["--batch-size", "12x"], "--batch-size"),
        (["--hidden", "512,,512"], "--hidden"), (["--hidden", ""], "--hidden"), (["--hidden", "512,"], "--hidden"),
        (["--hidden", "0,8"], "--hidden"), (["--hidden", "8,-1"], "--hidden"), (["--hidden", "a,b"], "--hidden"),
        (["--epochs", "-1"], "--epochs"), (["--epochs", "0"], "--epochs"), (["--epochs", "1.5"], "--epochs"),
        (["--validation-split", "1"], "--validation-split"), (["--validation-split", "-0.1"], "--validation-split"),
        (["--validation-split", "nan"], "--validation-split"), (["--validation-split", "1/0"], "--validation-split"),
        (["--validation-split", "half"], "--validation-split"),
        (["--dtype", "float16"], "--dtype"), (["--dtype", "int32"], "--dtype"),
        (["--lr", "0"], "--lr"), (["--lr", "-0.1"], "--lr"), (["--lr", "nan"], "--lr"), (["--lr", "inf"], "--lr"),
        (["--momentum", "-0.5"], "--momentum"), (["--momentum", "0"], "--momentum"),
        (["--decay", "-1"], "--decay"), (["--weight-decay", "-1e-4"], "--weight-decay"),
        (["--seed", "-1"], "--seed"), (["--seed", "x"], "--seed"),
        (["--checkpoint-dir", str(tmp_path / "run"), "--checkpoint-every-steps", "0"], "--checkpoint-every-steps"),
        (["--checkpoint-dir", str(tmp_path / "run"), "--checkpoint-every-epochs", "-1"],
         "--checkpoint-every-epochs"),
        (["--checkpoint-dir", str(tmp_path / "run"), "--keep-checkpoints", "0"], "--keep-checkpoints"),
        (["--checkpoint-every-steps", "5"], "--checkpoint-every-steps"),
        (["--keep-checkpoints", "2"], "--keep-checkpoints"),
        (["--checkpoint-dir", str(a_file)], "--checkpoint-dir"),
        (["--checkpoint-dir", str(missing / "a" / "b")], "--checkpoint-dir"),
        (["--data", str(missing)], "--data"), (["--data", str(a_file)], "--data"),
        (["--resume", str(missing / "model.npz")], "--resume"),
        (["--save", str(missing / "model.npz")], "--save"), (["--save", str(tmp_path)], "--save"),
        (["--history", str(missing / "h.csv")], "--history"),
        (["--plot", str(tmp_path / "curves.txt")], "--plot"), (["--plot", str(missing / "c.png")], "--plot"),
        (["--activation", "softmax"], "--activation"), (["--activation", "swishy"], "--activation"),
        (["--backend", "tpu"], "--backend"), (["--model", "transformer"], "--model"),
        (["--verbose", "3"], "--verbose"), (["--schedule", "linear"], "--schedule"),
        (["--no-such-option"], "--no-such-option"),
    ]


def test_every_bad_value_is_one_line_with_status_2_before_any_data_loads(tmp_path, capsys, no_data):
    for arguments, option in _bad(tmp_path):
        status = cli.main(["train", *arguments])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert status == 2, (arguments, captured)
        assert len(lines) == 1 and lines[0].startswith("tensornet train: error: "), (arguments, captured.err)
        assert option in lines[0], (arguments, lines[0])
        assert "Traceback" not in captured.err and captured.out == "", arguments


def test_a_bad_value_from_the_shell_is_one_line_and_status_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tensornet", "train", "--batch-size", "0"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert "--batch-size: must be a positive integer (>= 1); got '0'" in done.stderr


def test_values_that_parse_become_the_right_types():
    args = cli_parser.parse(["train", "--hidden", " 64, 32 ", "--validation-split", "1/10", "--seed", "3",
                             "--no-nesterov", "--momentum", "0"])
    assert args.hidden == [64, 32] and args.validation_split == pytest.approx(0.1) and args.seed == 3
    defaults = cli_parser.parse(["train"])
    assert defaults.hidden == [512, 512] and defaults.validation_split == pytest.approx(1 / 12)
    assert defaults.batch_size == 128 and defaults.epochs == 10 and defaults.verbose == "auto"
    assert cli_train.progress_level(defaults.verbose) == 1


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"tensornet {tensornet.__version__}\n"
    done = subprocess.run([sys.executable, "-m", "tensornet", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"tensornet {tensornet.__version__}"


def test_every_option_has_a_help_line_and_its_default_shown(capsys):
    parser = cli.build_parser()
    for name, command in parser.command_parsers.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 10, (name, action.option_strings)
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--batch-size N examples per optimizer step", "(default: 128)", "(default: 10)",
                  "(default: 512,512)", "(default: 1/12)", "(default: 0.9)", "(default: relu)",
                  "(default: float32)", "(default: 0)", "(default: auto)", "(default: True)", "default: 3)"):
        assert shown in text, shown
    assert "(default: None)" not in text and "(default: False)" not in text


def test_top_level_help_has_no_raw_markup(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":mod:" not in out
    assert "train" in out and "info" in out and "--version" in out


def test_the_script_entry_point_is_the_package_main():
    scripts = (ROOT / "pyproject.toml").read_text().split("[project.scripts]", 1)[1]
    module, attribute = re.search(r'^tensornet = "([\w.]+):(\w+)"', scripts, re.M).groups()
    assert module == "tensornet.cli" and getattr(cli, attribute) is cli.main


def test_an_unusable_backend_stops_before_the_data_loads(capsys, no_data):
    from tensornet.backend import cupy_status

    if cupy_status()[0]:
        pytest.skip("CuPy runs here")
    assert cli.main(["train", "--backend", "cupy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tensornet: error: backend 'cupy' cannot run here") and err.count("\n") == 1


def test_a_bad_saved_run_stops_before_the_data_loads(tmp_path, capsys, no_data):
    corrupt = tmp_path / "model.npz"
    corrupt.write_bytes(b"not a model file")
    assert cli.main(["train", "--resume", str(corrupt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tensornet: error: ") and err.count("\n") == 1 and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert cli.main(["train", "--resume", str(tmp_path / "empty")]) == 2
    assert "holds no complete checkpoint" in capsys.readouterr().err
