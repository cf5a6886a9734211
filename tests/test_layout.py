"""The shape of the code: imports point one way with no cycles (the import-linter contracts in
pyproject.toml), every module is short enough to read in one sitting, and the product's text
speaks of the product, not of how it was made."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 400


def _files(top, suffixes):
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__", "results")]
        for name in filenames:
            if name.endswith(suffixes):
                yield os.path.join(dirpath, name)


def test_import_contracts_hold():
    """``lint-imports`` (grimp reads every import, those inside functions too): the layers
    cli -> models -> training -> nn / optim / datasets -> io -> backend, no cycle between the
    modules of any package, and no library module importing a Keras-path re-export."""
    pytest.importorskip("importlinter")
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("path", sorted(os.path.relpath(p, ROOT) for p in _files("tensornet", (".py",))))
def test_module_is_at_most_400_lines(path):
    with open(os.path.join(ROOT, path)) as handle:
        lines = sum(1 for _ in handle)
    assert lines <= MAX_LINES, f"{path} has {lines} lines"


_HISTORY = re.compile(r"\bsession \d+|\bchange \d+[a-z]?\b|\brun s\d+[a-z]?\b|\bcpu-2core-s\d", re.I)


def test_no_development_history_in_the_product():
    """No numbered work periods, run labels or change numbers in the code, docs or benchmarks."""
    found = []
    paths = [*_files("tensornet", (".py",)), *_files("bench", (".py", ".md")), *_files("docs", (".md",)),
             *_files("kernels", (".cu", ".cuh")), *_files("examples", (".py",)), os.path.join(ROOT, "README.md")]
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if _HISTORY.search(line):
                    found.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
