"""SIGKILL ``tensornet train`` at random instants many times, resuming each time, and check that
nothing is lost or corrupt (the long form of tests/test_cli_checkpoints.py's kill test).

    python bench/kill_resume.py --kills 200 --seed 3

prints the counts (kills, resumes, checkpoints checked, corrupt ones: must be 0) and whether the
final weights, optimizer state and history equal an uninterrupted run's; exits 1 otherwise.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tensornet itself, and the harness beside the tests

from kill_resume import kill_and_resume  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        report = kill_and_resume(workdir, kills=args.kills, seed=args.seed, timeout=600)
    print(report.summary())
    print(f"({time.perf_counter() - started:.0f} s)")
    for line in report.differences:
        print("  " + line)
    return 0 if report.identical and report.corrupt == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
