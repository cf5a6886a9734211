"""What huge pages buy a training step: tensornet through ``fit`` with the buffers it keeps from
step to step (flat parameters, gradients, optimizer state, layer workspaces, scratch buffers) on
transparent huge pages (the default on Linux, ``tensornet.backend.huge_pages``: 2 MiB-aligned,
every buffer from 2 MiB) against the same network on NumPy's ordinary allocations
(``TENSORNET_HUGE_PAGES=0`` while it is built and trained, on a backend instance of its own:
NumPy itself advises huge pages for arrays from 4 MiB, wherever malloc places them, so only
their whole 2 MiB-aligned stretches get them), and PyTorch's idiomatic loop beside them.

All three train from identical weights on the same 8 batches, interleaved round by round in one
process (bench/harness.py's ``time_interleaved``: the order rotates, blocks are cut to about
0.3 s), so that the host's load hits them alike. Cases: 784-512-512-10 at batch 128 with SGD
(Nesterov momentum 0.9) and with Adam, and 784-2048-2048-10 at batch 256 with SGD, as
bench/compare.py defines them (random batches); cnn-small at batch 128 with SGD (momentum 0.9),
as bench/compare_cnn.py defines it, on the first 1,024 Fashion-MNIST training images.

    python bench/huge_pages.py             # table + bench/results/<name>.{json,txt}
    python bench/huge_pages.py --quick     # a smoke run (bench/test_huge_pages.py): tiny counts, no files
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import compare_cnn  # noqa: E402
from compare import TensornetStepper, TorchStepper, build_tensornet, build_torch  # noqa: E402
from harness import command_line, machine_info, paired_ratios, time_interleaved, write_record  # noqa: E402
from tensornet.backend import NumpyBackend, huge_pages  # noqa: E402

#: (name, layer sizes (None: bench/compare_cnn.py's network of that name), batch, optimizer)
CASES = [("mlp-512", (784, 512, 512, 10), 128, "nesterov"),
         ("mlp-512-adam", (784, 512, 512, 10), 128, "adam"),
         ("mlp-2048", (784, 2048, 2048, 10), 256, "nesterov"),
         ("cnn-small", None, 128, "momentum")]
TRAINERS = ("huge", "ordinary", "torch")


def pages(huge):
    """``with pages(huge):`` -- ``TENSORNET_HUGE_PAGES`` set to 1 or 0 inside, restored after."""
    return mock.patch.dict(os.environ, {"TENSORNET_HUGE_PAGES": "1" if huge else "0"})


class PagesStepper(TensornetStepper):
    """A :class:`TensornetStepper` whose ``fit`` calls run with huge pages on or off (``huge``),
    so that the workspaces ``fit`` allocates follow the same setting as the model's buffers."""

    def __init__(self, model, x, y, batch, huge):
        super().__init__(model, x, y, batch)
        self.huge = huge

    def run(self, count):
        with pages(self.huge):
            return super().run(count)


def build(name, sizes, optimizer, huge):
    """Case ``name``'s network on a NumPy backend of its own, built with huge pages on or off."""
    with pages(huge):
        if sizes is None:
            return compare_cnn.build_tensornet(name, backend=NumpyBackend())
        return build_tensornet(sizes, NumpyBackend(), optimizer=optimizer)


def case_batches(name, sizes, batch):
    """8 batches ``(x, labels)`` for case ``name``: Fashion-MNIST images for a CNN, else random."""
    if sizes is None:
        x, y = compare_cnn.load_images(8 * batch)
        return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(8)]
    rng = np.random.default_rng(123)
    return [(rng.standard_normal((batch, sizes[0]), dtype=np.float32), rng.integers(0, sizes[-1], batch))
            for _ in range(8)]


def huge_mappings():
    """[(start, end)] of this process's mappings that hold huge pages (``AnonHugePages`` > 0 in
    ``/proc/self/smaps``); None where that cannot be read."""
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return None
    found, current = [], None
    for line in lines:
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            current = tuple(int(part, 16) for part in head.split("-"))
        elif head == "AnonHugePages:" and int(line.split()[1]) > 0:
            found.append(current)
    return found


def lasting_buffers(model):
    """The arrays ``model`` keeps from step to step: flat parameters and gradients, optimizer
    state, layer workspaces, its backend's scratch buffers."""
    arrays = [array for pair in model.store.groups.values() for array in pair]
    arrays += [array for group in model.optimizer.state.values() for array in group.values()]
    arrays += [array for layer in model.layers for array in layer._workspaces.values()]
    return arrays + list(model.ops._scratch_buffers.values())


def huge_page_share(model):
    """(MiB of ``model``'s lasting buffers, the share of those bytes whose buffer starts in a
    mapping holding huge pages), or (MiB, None) where /proc/self/smaps cannot be read."""
    arrays = lasting_buffers(model)
    total = sum(array.nbytes for array in arrays)
    mappings = huge_mappings()
    if mappings is None or not total:
        return total / 2 ** 20, None
    backed = sum(array.nbytes for array in arrays
                 if any(low <= array.ctypes.data < high for low, high in mappings))
    return total / 2 ** 20, backed / total


def run_case(name, sizes, batch, optimizer, rounds, steps, warmup):
    import torch

    batches = case_batches(name, sizes, batch)
    xs, labels = [x for x, _ in batches], [y for _, y in batches]
    targets = labels if sizes is None else [np.eye(sizes[-1], dtype=np.float32)[lab] for lab in labels]
    tiles = -(-(8 + max(steps, warmup) + 1) // 8)
    x_all, y_all = np.concatenate(xs * tiles), np.concatenate(targets * tiles)
    models = {label: build(name, sizes, optimizer, label == "huge") for label in TRAINERS[:2]}
    models["ordinary"].set_weights(models["huge"].get_weights())
    steppers = {label: PagesStepper(model, x_all, y_all, batch, label == "huge") for label, model in models.items()}
    if sizes is None:
        net, opt = compare_cnn.build_torch(name, models["huge"])
        xs = [np.ascontiguousarray(x.transpose(0, 3, 1, 2)) for x in xs]  # NHWC -> PyTorch's NCHW
    else:
        net, opt = build_torch(sizes, models["huge"].get_weights(), optimizer)
    steppers["torch"] = TorchStepper(net, opt, [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(xs, labels)])
    times, per_block = time_interleaved(steppers, rounds, steps, warmup, block_seconds=0.3)
    med = {label: statistics.median(laps) for label, laps in times.items()}
    return {"case": name, "sizes": list(sizes) if sizes else None, "batch": batch, "optimizer": optimizer, "median_s": med,
            "huge_over_ordinary": med["huge"] / med["ordinary"], "huge_over_torch": med["huge"] / med["torch"],
            "ordinary_over_torch": med["ordinary"] / med["torch"],
            "huge_over_ordinary_per_round_quartiles": paired_ratios(times, per_block, "huge", "ordinary"),
            "steps_per_block": per_block, "steps_timed": len(times["huge"]),
            "lasting_mib_and_huge_share": {label: huge_page_share(model) for label, model in models.items()},
            "tensornet_step": models["huge"].step_path}


def share(fraction):
    return "?" if fraction is None else f"{fraction * 100:.0f} %"


def format_table(results):
    head = (f"{'case':<13} {'batch':>5} {'opt':>8} {'huge':>9} {'ordinary':>9} {'torch':>9} {'h/o':>5} "
            f"{'h/o quartiles':>15} {'h/torch':>7} {'o/torch':>7}  lasting buffers in huge-page mappings (huge / ordinary)")
    lines = [head, "-" * len(head)]
    for res in results:
        med, q = res["median_s"], res["huge_over_ordinary_per_round_quartiles"]
        (mib, huge), (_, ordinary) = (res["lasting_mib_and_huge_share"][label] for label in TRAINERS[:2])
        lines.append(f"{res['case']:<13} {res['batch']:>5} {res['optimizer']:>8} {med['huge'] * 1e3:>7.3f}ms "
                     f"{med['ordinary'] * 1e3:>7.3f}ms {med['torch'] * 1e3:>7.3f}ms {res['huge_over_ordinary']:>5.2f} "
                     f"{'/'.join(f'{v:.2f}' for v in q):>15} {res['huge_over_torch']:>7.2f} "
                     f"{res['ordinary_over_torch']:>7.2f}  {share(huge)} / {share(ordinary)} of {mib:.1f} MiB")
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
    footer = ("huge / ordinary: tensornet's lasting buffers on huge pages / on NumPy's own allocations, medians of "
              "per-step times through fit; quartiles: of the per-round ratio; torch: PyTorch's default "
              "optimizer (foreach); last column: the share of each model's lasting buffers (flat parameters and "
              "gradients, optimizer state, workspaces, scratch), by bytes, that start in a mapping holding huge "
              "pages (/proc/self/smaps: NumPy's own arrays from 4 MiB are advised huge pages too)\n"
              "tensornet's step: " + "; ".join(f"{res['case']} {res['tensornet_step']}" for res in results))
    print(table)
    print(footer)
    if not args.quick and not args.no_save:
        now = datetime.datetime.now()
        stem = args.name or f"cpu-{os.cpu_count()}core-{now:%Y-%m-%d}-huge-pages"
        command = command_line("huge_pages.py", argv)
        payload = {"when": now.strftime("%Y%m%d-%H%M%S"), "machine": info, "transparent_hugepage": setting,
                   "results": results}
        write_record(stem, command, payload, header, table, footer)
    return results


if __name__ == "__main__":
    main()
