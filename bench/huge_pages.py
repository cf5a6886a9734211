"""What huge pages buy a training step: tensornet through ``fit`` with its flat parameter,
gradient and optimizer-state buffers on transparent huge pages (the default on Linux,
``tensornet.backend.huge_pages``) against the same network on ordinary 4 KiB pages
(``TENSORNET_HUGE_PAGES=0`` while the model is built), and PyTorch's idiomatic loop beside them.

All three train from identical weights on the same 8 batches, interleaved round by round in one
process (bench/harness.py's ``time_interleaved``: the order rotates, blocks are cut to about
0.3 s), so that the host's load hits them alike. Cases: 784-512-512-10 at batch 128 with SGD
(Nesterov momentum 0.9) and with Adam, and 784-2048-2048-10 at batch 256 with SGD, as
bench/compare.py defines them.

    python bench/huge_pages.py             # table + bench/results/<name>.{json,txt}
    python bench/huge_pages.py --quick     # a smoke run (bench/test_huge_pages.py): tiny counts, no files
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compare import TensornetStepper, TorchStepper, build_tensornet, build_torch  # noqa: E402
from harness import machine_info, paired_ratios, time_interleaved  # noqa: E402
from tensornet.backend import huge_pages  # noqa: E402

#: (name, layer sizes, batch, optimizer)
CASES = [("mlp-512", (784, 512, 512, 10), 128, "nesterov"),
         ("mlp-512-adam", (784, 512, 512, 10), 128, "adam"),
         ("mlp-2048", (784, 2048, 2048, 10), 256, "nesterov")]
TRAINERS = ("huge", "ordinary", "torch")


def build(sizes, optimizer, huge):
    """The bench/compare.py network, its flat buffers on huge pages or not (``huge``)."""
    saved = os.environ.get("TENSORNET_HUGE_PAGES")
    os.environ["TENSORNET_HUGE_PAGES"] = "1" if huge else "0"
    try:
        return build_tensornet(sizes, "numpy", optimizer=optimizer)
    finally:
        if saved is None:
            del os.environ["TENSORNET_HUGE_PAGES"]
        else:
            os.environ["TENSORNET_HUGE_PAGES"] = saved


def on_huge_pages(array):
    """Whether ``array``'s first byte lies in memory the kernel backs with a huge page
    (``AnonHugePages`` of its mapping in ``/proc/self/smaps``); None where that cannot be read."""
    address = array.ctypes.data
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return None
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            low, high = (int(part, 16) for part in head.split("-"))
            inside = low <= address < high
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1]) > 0
    return None


def run_case(name, sizes, batch, optimizer, rounds, steps, warmup):
    import torch

    rng = np.random.default_rng(123)
    xs = [rng.standard_normal((batch, sizes[0]), dtype=np.float32) for _ in range(8)]
    labels = [rng.integers(0, sizes[-1], batch) for _ in range(8)]
    onehots = [np.eye(sizes[-1], dtype=np.float32)[lab] for lab in labels]
    tiles = -(-(8 + max(steps, warmup) + 1) // 8)
    x_all, y_all = np.concatenate(xs * tiles), np.concatenate(onehots * tiles)
    models = {label: build(sizes, optimizer, label == "huge") for label in TRAINERS[:2]}
    models["ordinary"].set_weights(models["huge"].get_weights())
    steppers = {label: TensornetStepper(model, x_all, y_all, batch) for label, model in models.items()}
    net, opt = build_torch(sizes, models["huge"].get_weights(), optimizer)
    steppers["torch"] = TorchStepper(net, opt, [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(xs, labels)])
    times, per_block = time_interleaved(steppers, rounds, steps, warmup, block_seconds=0.3)
    med = {label: statistics.median(laps) for label, laps in times.items()}
    return {"case": name, "sizes": list(sizes), "batch": batch, "optimizer": optimizer, "median_s": med,
            "huge_over_ordinary": med["huge"] / med["ordinary"], "huge_over_torch": med["huge"] / med["torch"],
            "ordinary_over_torch": med["ordinary"] / med["torch"],
            "huge_over_ordinary_per_round_quartiles": paired_ratios(times, per_block, "huge", "ordinary"),
            "steps_per_block": per_block, "steps_timed": len(times["huge"]),
            "params_on_huge_pages": {label: on_huge_pages(model.store.flat()[0]) for label, model in models.items()},
            "tensornet_step": models["huge"].step_path}


def format_table(results):
    head = (f"{'case':<13} {'batch':>5} {'opt':>8} {'huge':>9} {'ordinary':>9} {'torch':>9} {'h/o':>5} "
            f"{'h/o quartiles':>15} {'h/torch':>7} {'o/torch':>7}  huge pages (huge/ordinary)")
    lines = [head, "-" * len(head)]
    for res in results:
        med, q = res["median_s"], res["huge_over_ordinary_per_round_quartiles"]
        backed = res["params_on_huge_pages"]
        lines.append(f"{res['case']:<13} {res['batch']:>5} {res['optimizer']:>8} {med['huge'] * 1e3:>7.3f}ms "
                     f"{med['ordinary'] * 1e3:>7.3f}ms {med['torch'] * 1e3:>7.3f}ms {res['huge_over_ordinary']:>5.2f} "
                     f"{'/'.join(f'{v:.2f}' for v in q):>15} {res['huge_over_torch']:>7.2f} "
                     f"{res['ordinary_over_torch']:>7.2f}  {backed['huge']}/{backed['ordinary']}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds per case")
    parser.add_argument("--steps", type=int, default=20, help="steps per trainer per round (at most)")
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES))
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny counts, no files")
    parser.add_argument("--name", default=None, help="results file stem (default: cpu-<cores>core-<date>-huge-pages)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    wanted = args.cases.split(",")
    rounds, steps, warmup = (2, 2, 2) if args.quick else (args.rounds, args.steps, 10)
    info = machine_info("cpu")
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    setting = thp.read_text().strip() if thp.exists() else "none"
    header = (f"# {info['cpu']}, {info['cores']} cores, NumPy {info['numpy']}, torch {info.get('torch')} "
              f"({info.get('torch_threads')} threads), tensornet BLAS: {info['tensornet_blas']}; "
              f"transparent_hugepage/enabled: {setting}; huge pages usable: {huge_pages.enabled()}")
    print(header, flush=True)
    results = [run_case(name, sizes, batch, opt, rounds, steps, warmup)
               for name, sizes, batch, opt in CASES if name in wanted]
    table = format_table(results)
    footer = ("huge / ordinary: tensornet's flat buffers on transparent huge pages / on 4 KiB pages, medians of "
              "per-step times through fit; quartiles: of the per-round ratio; torch: PyTorch's default "
              "optimizer (foreach); last column: whether the kernel backs each model's parameters with a huge page\n"
              "tensornet's step: " + "; ".join(f"{res['case']} {res['tensornet_step']}" for res in results))
    print(table)
    print(footer)
    if not args.quick and not args.no_save:
        now = datetime.datetime.now()
        stem = args.name or f"cpu-{os.cpu_count()}core-{now:%Y-%m-%d}-huge-pages"
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        command = "python bench/huge_pages.py " + " ".join(argv if argv is not None else sys.argv[1:])
        payload = {"command": command.strip(), "when": now.strftime("%Y%m%d-%H%M%S"), "machine": info,
                   "transparent_hugepage": setting, "results": results}
        (out / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
        (out / f"{stem}.txt").write_text(f"$ {command.strip()}\n{header}\n{table}\n{footer}\n")
        print(f"wrote {out / stem}.json and .txt")
    return results


if __name__ == "__main__":
    main()
