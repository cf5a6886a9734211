"""The README's figures, regenerated rather than typed.

    python bench/readme_figures.py                 # run the default `tensornet train`, rewrite the README
    python bench/readme_figures.py --log run.txt   # the same from the output of a run already made
    python bench/readme_figures.py --check run.txt # exit 1 unless the README quotes that run's accuracy

Two blocks of README.md are written by this script, each between marker comments:

- ``<!-- figures:train -->``: what the default train command (seed 0) printed: its test
  accuracy, wall time and first-epoch time against the later epochs (the first pays for
  compiling the CPU kernels);
- ``<!-- figures:timing -->``: the timing table, from the newest ``bench/results/*-compare.json``
  record that ``bench/compare.py`` wrote (its machine line included).

``--check`` is what CI runs on the log of its own default train command (`.ci/run`): a README
whose quoted accuracy is not the default run's fails CI. Runs on different machines can round
differently in their reductions (other core counts, other BLAS kernels), so the check allows
``--tolerance`` (default 0.003, 30 of the 10,000 test images).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
RESULTS = os.path.join(ROOT, "bench", "results")

_ACCURACY = re.compile(r"test accuracy: (\d\.\d{4})")
_WALL = re.compile(r"wall time (\d+(?:\.\d+)?)s")
_EPOCH = re.compile(r"^Epoch (\d+)/(\d+) - \d+ steps - (\d+(?:\.\d+)?)s", re.M)
_QUOTED = re.compile(r"test accuracy \*\*(\d\.\d{4})\*\*")


def block(text, name):
    """(start, end) of the text between ``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->``."""
    opening, closing = f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"
    start, end = text.find(opening), text.find(closing)
    if start < 0 or end < start:
        raise SystemExit(f"readme_figures: README.md has no {opening} ... {closing} block")
    return start + len(opening), end


def replace_block(text, name, content):
    start, end = block(text, name)
    return text[:start] + "\n" + content.rstrip("\n") + "\n" + text[end:]


def parse_run(log):
    """{accuracy, wall, epochs: [seconds, ...]} from a train command's output."""
    accuracy, wall = _ACCURACY.search(log), _WALL.search(log)
    if accuracy is None or wall is None:
        raise SystemExit("readme_figures: the log holds no 'test accuracy: ... - wall time ...s' line")
    return {"accuracy": accuracy.group(1), "wall": float(wall.group(1)),
            "epochs": [float(m.group(3)) for m in _EPOCH.finditer(log)]}


def train_text(run, machine):
    epochs = run["epochs"]
    later = sorted(epochs[1:])[len(epochs[1:]) // 2] if len(epochs) > 1 else None
    first = ""
    if later:
        first = f" Epoch 1 took {epochs[0]:.1f} s, the median later epoch {later:.1f} s"
        first += (": the first one also loads the CPU kernels from Numba's cache (or compiles them, in a fresh"
                  " environment) and first touches the model's buffers." if epochs[0] > 1.2 * later else ".")
    return (f"With the defaults (seed 0) it printed test accuracy **{run['accuracy']}** after "
            f"{len(epochs) or 10} epochs, in {run['wall']:.0f} s of wall time on {machine}.{first}")


def newest_compare_record():
    paths = glob.glob(os.path.join(RESULTS, "*-compare.json"))
    if not paths:
        raise SystemExit(f"readme_figures: no *-compare.json record in {RESULTS}; run python bench/compare.py")
    records = []
    for path in paths:
        with open(path) as handle:
            records.append((json.load(handle), path))
    return max(records, key=lambda pair: (pair[0].get("when", ""), pair[1]))


def _time(seconds):
    return f"{seconds * 1000:.3f} ms" if seconds < 1 else f"{seconds:.3f} s"


def timing_text(record, path):
    machine = record.get("machine", {})
    versions = ", ".join(f"{name} {machine[key]}" for name, key in
                         (("Python", "python"), ("NumPy", "numpy"), ("Numba", "numba"), ("PyTorch", "torch"),
                          ("tensornet", "tensornet")) if machine.get(key))
    lines = [f"From `bench/results/{os.path.basename(path)}` (`{record.get('command', 'python bench/compare.py')}`, "
             f"{record.get('when', '?')}): {machine.get('cores', '?')}-core {machine.get('cpu', 'CPU')}; "
             f"{versions}; PyTorch on {machine.get('torch_threads', '?')} threads.", "",
             "| case | batch | tensornet | PyTorch | ratio | GEMM share | step `fit` took |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in record["results"]:
        median = row.get("median_s", {})
        share = f"{row['gemm_share'] * 100:.0f} %" if row.get("gemm_share") is not None else ""
        sizes = "-".join(str(s) for s in row.get("sizes", []))
        case = f"{row['case']} ({sizes})" if sizes and sizes not in row["case"] else row["case"]
        step = str(row.get("tensornet_step", "")).split(" (")[0]
        lines.append(f"| {case} | {row.get('batch', '')} | {_time(median['tensornet'])} | {_time(median['torch'])} "
                     f"| {row['ratio_vs_torch']:.2f} | {share} | {step} |")
    return "\n".join(lines)


def this_machine():
    """``N-core CPU-NAME`` of the machine this script runs on (the CPU from /proc/cpuinfo where there is one)."""
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    name = " ".join(line.split(":", 1)[1].split()[:3])
                    break
    except OSError:
        pass
    return f"a {os.cpu_count()}-core {name}"


def run_default_train():
    """The README's train command with its defaults, in this interpreter; returns its output."""
    done = subprocess.run([sys.executable, "-m", "tensornet", "train", "--verbose", "2"], cwd=ROOT,
                          capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    if done.returncode:
        raise SystemExit(f"readme_figures: tensornet train failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def quoted_accuracy(text):
    start, end = block(text, "train")
    found = _QUOTED.search(text[start:end])
    if found is None:
        raise SystemExit("readme_figures: the README's figures:train block quotes no test accuracy")
    return found.group(1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", help="output of a default `tensornet train` run to use instead of running one")
    parser.add_argument("--check", metavar="LOG", help="only compare the README's quoted accuracy with LOG's")
    parser.add_argument("--tolerance", type=float, default=0.003, help="largest accepted accuracy difference")
    parser.add_argument("--machine", default=None, help="how the README names the machine of the train run")
    args = parser.parse_args(argv)
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    if args.check:
        with open(args.check, encoding="utf-8") as handle:
            run = parse_run(handle.read())
        quoted = quoted_accuracy(text)
        difference = abs(float(quoted) - float(run["accuracy"]))
        if difference > args.tolerance:
            print(f"readme_figures: README.md quotes test accuracy {quoted}, the default run printed "
                  f"{run['accuracy']} (differs by {difference:.4f} > {args.tolerance}); run python "
                  f"bench/readme_figures.py", file=sys.stderr)
            return 1
        print(f"readme_figures: README.md quotes {quoted}; the default run printed {run['accuracy']}: ok")
        return 0
    if args.log:
        with open(args.log, encoding="utf-8") as handle:
            log = handle.read()
    else:
        log = run_default_train()
    record, path = newest_compare_record()
    machine = args.machine or this_machine()
    text = replace_block(text, "train", train_text(parse_run(log), machine))
    text = replace_block(text, "timing", timing_text(record, path))
    with open(README, "w", encoding="utf-8") as handle:
        handle.write(text)
    print("readme_figures: rewrote README.md's figures:train and figures:timing blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
