"""Fuzz the IDX reader, the model loader and the checkpoint loader longer than CI does.

    python bench/fuzz_loaders.py                  # 20000 examples per property
    python bench/fuzz_loaders.py --examples 5000 --only idx

Runs the hypothesis properties of tests/test_datasets_idx_fuzz.py, tests/test_saving_fuzz.py and
tests/test_checkpoints_fuzz.py
(see their docstrings for what each checks: a clean load or a ValueError naming the file, nothing
else, with bounded memory) with ``--examples`` examples each, and prints, per property, the files
tried, loaded and rejected, and the seconds taken. Runs are derandomized (reproducible). Exits 1
when a property fails (hypothesis prints the smallest failing file).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the test modules import their helpers by name


def load_tests_module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_fixture(make):
    """Wrap ``run(fixture, directory, examples)`` properties as ``call(directory, examples)``; the
    fixture (a saved model, taken checkpoints) is made once, by the first call, in its directory."""
    made = {}

    def wrap(run):
        def call(directory, examples):
            if "it" not in made:
                (directory / "fixture").mkdir(exist_ok=True)
                made["it"] = make(directory / "fixture")
            return run(made["it"], directory, examples)
        return call
    return wrap


def properties(only):
    """(name, callable(directory, examples)) of every property to run."""
    found = []
    if only in (None, "idx"):
        idx = load_tests_module("test_datasets_idx_fuzz")
        found += [("idx mutated", idx.run_mutated), ("idx random", idx.run_random)]
    if only in (None, "model"):
        model = load_tests_module("test_saving_fuzz")
        saved = with_fixture(model.Saved)
        found += [("model bytes", saved(model.run_bytes)), ("model zip members", saved(model.run_zip)),
                  ("model header", saved(model.run_header)), ("load_weights", saved(model.run_load_weights))]
    if only in (None, "checkpoint"):
        checkpoint = load_tests_module("test_checkpoints_fuzz")
        taken = with_fixture(checkpoint.Taken)
        found += [("checkpoint bytes", taken(checkpoint.run_bytes)),
                  ("checkpoint resume point", taken(checkpoint.run_resume))]
    return found


def describe(exc, chars):
    """Each failure's place, type and message, then its notes (the falsifying example), cut to ``chars``."""
    lines = []
    for failure in getattr(exc, "exceptions", [exc]):
        where = traceback.extract_tb(failure.__traceback__)[-1]
        lines.append(f"  FAILED at {where.filename}:{where.lineno}: {type(failure).__name__}: {failure}"[:chars])
        lines += [f"    {note}"[:chars] for note in getattr(failure, "__notes__", [])]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000, help="examples per property (default 20000)")
    parser.add_argument("--only", choices=["idx", "model", "checkpoint"],
                        help="run only the IDX, the model or the checkpoint properties")
    parser.add_argument("--report-chars", type=int, default=1500, help="characters printed per failure line")
    args = parser.parse_args(argv)
    failed = []
    with tempfile.TemporaryDirectory(prefix="tensornet-fuzz-") as tmp:
        for name, run in properties(args.only):
            start = time.perf_counter()
            try:
                run(Path(tmp), args.examples)  # prints its counts line
            except Exception as exc:  # hypothesis' failures, their falsifying examples in the notes
                failed.append(name)
                print(describe(exc, args.report_chars))
            print(f"  ({time.perf_counter() - start:.1f} s)", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    print("all properties held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
