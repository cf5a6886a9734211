"""The README's commands are the ones CI runs: the train command's apt packages are installed by
.ci/run, its install and train steps appear in .ci/run word for word, and the figures the README
quotes sit between the markers bench/readme_figures.py rewrites."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _train_command():
    block = README.split("<!-- ci:train-command -->", 1)[1].split("<!-- /ci:train-command -->", 1)[0]
    lines = [line.strip() for line in block.strip().strip("`").splitlines()]
    return [line for line in lines if line and line != "sh"]


def test_the_readme_train_command_is_an_apt_line_then_the_install_and_the_run():
    apt, install = _train_command()
    assert apt.startswith("apt-get update && apt-get install -y ")
    assert install == "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/tensornet train"


def test_ci_installs_every_apt_package_of_the_readme():
    apt, _ = _train_command()
    packages = apt.split("apt-get install -y ", 1)[1].split()
    for package in packages:
        assert re.search(rf"missing\+=\({re.escape(package)}\)", CI), f".ci/run does not install {package}"


def test_ci_runs_the_readme_install_and_train_steps_word_for_word():
    _, install = _train_command()
    setup, _, train = install.rpartition(" && ")
    ci_lines = [line.strip() for line in CI.splitlines()]
    assert setup in ci_lines, f".ci/run does not run {setup!r}"
    assert any(line.startswith(train + " ") or line == train for line in ci_lines), train
    assert "bench/readme_figures.py --check" in CI


def test_the_readme_quotes_generated_figures_only_between_their_markers():
    for name in ("train", "timing"):
        assert README.count(f"<!-- figures:{name} -->") == README.count(f"<!-- /figures:{name} -->") == 1
    train = README.split("<!-- figures:train -->", 1)[1].split("<!-- /figures:train -->", 1)[0]
    assert re.search(r"test accuracy \*\*0\.\d{4}\*\*", train)
    outside = README.replace(train, "")
    assert not re.search(r"0\.8\d{3}\b", outside), "an accuracy typed outside the generated block"
