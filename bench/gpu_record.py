"""The record of ``bench/gpu_check.sh``: one ``.txt`` (everything the check printed) and one
``.jsonl`` (one JSON object per step) under ``bench/results/``, named by device and date.

    python bench/gpu_record.py device                  # the GPU's name (exit 3 and the reason without one)
    python bench/gpu_record.py paths --device "NVIDIA H200" [--date 2026-12-03] [--results DIR]
    python bench/gpu_record.py versions --jsonl PATH   # print and record device, driver, CUDA, CuPy, ...
    python bench/gpu_record.py step --jsonl PATH --name NAME --rc RC --seconds S --log FILE
    python bench/gpu_record.py summary --jsonl PATH    # one line per step; exit 1 when any failed

``step`` parses what it can from the step's log: the pytest summary line, the self-check's
``check: N of M kernel checks pass`` line, and ``tensornet train``'s test accuracy, wall time
and training step path. Needs NumPy only (CuPy and PyTorch for ``device`` and ``versions``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SETUP_ERROR = 3


def slug(name: str) -> str:
    """A device name as a file-name part: ``"NVIDIA H200"`` -> ``"nvidia-h200"``."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return text or "unknown-device"


def record_paths(device: str, date: str | None = None, results: Path | str = RESULTS) -> tuple[Path, Path]:
    """``(txt, jsonl)``: ``<results>/<device slug>-<date>-gpu-check.{txt,jsonl}`` (date: today, UTC)."""
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}")
    stem = Path(results) / f"{slug(device)}-{date}-gpu-check"
    return stem.with_suffix(".txt"), stem.with_suffix(".jsonl")


def append(jsonl: Path | str, record: dict) -> None:
    """Add ``record`` as one line of ``jsonl``."""
    with open(jsonl, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def read(jsonl: Path | str) -> list[dict]:
    """Every record of ``jsonl``, in order."""
    return [json.loads(line) for line in Path(jsonl).read_text(encoding="utf-8").splitlines() if line.strip()]


_PYTEST = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s", re.M)
_CHECK = re.compile(r"^check: (\d+) of (\d+) kernel checks pass", re.M)
_TRAIN = re.compile(r"test accuracy: ([\d.]+) .*wall time ([\d.]+)s")
_STEP_PATH = re.compile(r"^training step: (.+)$", re.M)


def parse_log(text: str) -> dict:
    """The figures a step's log states (those it holds): ``pytest`` (counts by outcome),
    ``kernel_checks_passed`` / ``kernel_checks``, ``test_accuracy``, ``train_wall_s``,
    ``step_path``."""
    found: dict = {}
    summaries = _PYTEST.findall(text)
    if summaries:
        found["pytest"] = {word: int(count) for count, word in
                           (part.split(" ", 1) for part in summaries[-1].split(", "))}
    check = _CHECK.search(text)
    if check:
        found["kernel_checks_passed"], found["kernel_checks"] = int(check.group(1)), int(check.group(2))
    train = _TRAIN.search(text)
    if train:
        found["test_accuracy"], found["train_wall_s"] = float(train.group(1)), float(train.group(2))
    path = _STEP_PATH.search(text)
    if path:
        found["step_path"] = path.group(1).strip()
    return found


def device_name() -> str:
    """The current GPU's name, through CuPy; SystemExit(3) saying what is missing otherwise."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tensornet.backend import cupy_status

    usable, reason = cupy_status()
    if not usable:
        raise SystemExit(_setup_error(f"gpu_check needs CuPy and a visible GPU: {reason}"))
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())["name"]
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)


def _setup_error(message):
    print(message, file=sys.stderr)
    return SETUP_ERROR


def versions() -> dict:
    """Device, driver, CUDA runtime and driver API, CuPy, PyTorch (and its CUDA), NumPy, Python."""
    import numpy

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tensornet.backend import get_backend
    import tensornet

    info = dict(get_backend("cupy").device_info())
    info.update(numpy=numpy.__version__, python=platform.python_version(), tensornet=tensornet.__version__,
                platform=platform.platform())
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
        info["display_driver"] = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout else None
    except (OSError, subprocess.SubprocessError, IndexError):
        info["display_driver"] = None
    try:
        import torch

        info.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                    torch_device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    except ImportError:
        info["torch"] = None
    return info


def summary(records: list[dict]) -> tuple[list[str], bool]:
    """One line per step (name, status, seconds, figures) and whether every step passed."""
    lines, ok = [], True
    for record in records:
        if "rc" not in record:
            continue
        passed = record["rc"] == 0
        ok = ok and passed
        figures = {k: v for k, v in record.items() if k not in ("step", "rc", "seconds", "log", "time")}
        lines.append(f"{record['step']:<12} {'PASS' if passed else 'FAIL (exit ' + str(record['rc']) + ')':<14} "
                     f"{record['seconds']:>7.1f}s  {json.dumps(figures, sort_keys=True) if figures else ''}".rstrip())
    return lines, ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="bench/gpu_check.sh's record")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("device")
    paths = commands.add_parser("paths")
    paths.add_argument("--device", required=True)
    paths.add_argument("--date", default=None)
    paths.add_argument("--results", default=str(RESULTS))
    for name in ("versions", "summary"):
        commands.add_parser(name).add_argument("--jsonl", required=True)
    step = commands.add_parser("step")
    step.add_argument("--jsonl", required=True)
    step.add_argument("--name", required=True)
    step.add_argument("--rc", type=int, required=True)
    step.add_argument("--seconds", type=float, required=True)
    step.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    if args.command == "device":
        print(device_name())
    elif args.command == "paths":
        txt, jsonl = record_paths(args.device, args.date, args.results)
        print(txt)
        print(jsonl)
    elif args.command == "versions":
        info = versions()
        for key in sorted(info):
            print(f"{key}: {info[key]}")
        append(args.jsonl, {"step": "versions", **info})
    elif args.command == "step":
        log = Path(args.log)
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        record = {"step": args.name, "rc": args.rc, "seconds": round(args.seconds, 1), **parse_log(text)}
        if args.rc == 124:
            record["timed_out"] = True
        append(args.jsonl, record)
    elif args.command == "summary":
        lines, ok = summary(read(args.jsonl))
        print("\n".join(lines))
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
