"""tensornet against PyTorch on the same MLP: same initial weights, same batches, one process.

For each size, three trainers start from identical weights -- tensornet (SGD, momentum 0.9),
PyTorch with its default SGD (foreach) and PyTorch with ``SGD(fused=True)`` -- and are timed
step by step, interleaved round by round (the order rotates each round; a trainer's block of
steps is cut to about ``--block-seconds``), so that a burst of load from another process hits
all of them alike. Before timing, the weights after three identical steps are compared (the
two libraries must train the same network).

Beside them the *GEMM floor*: only the matrix products one step needs (forward x W, backward
x^T dz and dz W^T, the first layer's dx skipped), one after the other, through the BLAS
tensornet's step uses (MKL where the ``mkl`` wheel is installed, else NumPy's), into
preallocated outputs. ``share`` is floor / tensornet step: the part of the step that is BLAS
work no framework can avoid.

The epoch row trains one whole Fashion-MNIST epoch through ``fit`` (60,000 samples, batch
128, shuffling, accuracy) against the idiomatic PyTorch loop (DataLoader over a
TensorDataset, shuffle=True, loss and accuracy summed per batch).

    python bench/compare.py                    # every case: table + bench/results/<name>.{json,txt}
    python bench/compare.py --quick            # a smoke run (CI, bench/test_compare.py): tiny counts, no files
    python bench/compare.py --device cuda      # tensornet on CuPy against PyTorch CUDA

Each case runs in a fresh child process (``--in-process``: all in this one), so that no case
inherits another's threads, allocations or caches.

tensornet's steps are timed where ``fit`` runs them, through the public API only: each block of
steps is one ``fit`` call over that many batches (``shuffle=False``), and a callback records the
wall-clock time from ``on_train_batch_begin`` to ``on_train_batch_end`` of each step (the first
step of every block, which follows fit's set-up, is not timed). ``model.step_path`` says which
step ``fit`` took (compiled or layered, and why).

Timings: median of per-step wall-clock times (on a GPU each step ends with a synchronise).
Beside each ratio of medians, the quartiles of the per-round ratio (tensornet's median step in a
round over PyTorch's in the same round) show how far the host moved it within the run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import (GemmFloor, Stepper, StepTimer, format_table, gemm_flops, machine_info,  # noqa: E402
                     paired_ratios, time_interleaved)
from tensornet.layers import Dense  # noqa: E402
from tensornet.models import Sequential  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402

LR, MOMENTUM = 0.01, 0.9

#: (name, layer sizes, batch, target ratio against PyTorch's default SGD, minimum GEMM share)
CASES = [
    ("mlp-512", (784, 512, 512, 10), 128, 0.90, 0.80),
    ("mlp-64", (784, 64, 10), 32, 0.50, None),
    ("mlp-2048", (784, 2048, 2048, 10), 256, 0.95, None),
]
EPOCH_CASE = ("fmnist-epoch", (784, 512, 512, 10), 128, 0.90)


# ---------------------------------------------------------------------- models
def build_tensornet(sizes, backend, seed=0, metrics=(), jit_compile="auto"):
    if backend == "numpy" and os.environ.get("BENCH_REFERENCE_BACKEND"):
        # Backend's reference operations over NumPy, none of the fast paths
        from tensornet.backend import Backend

        backend = Backend()
    model = Sequential(seed=seed)
    for i, units in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        kwargs = {"input_shape": (sizes[0],)} if i == 0 else {}
        model.add(Dense(units, activation="softmax" if last else "relu", **kwargs))
    model.compile(optimizer=SGD(lr=LR, momentum=MOMENTUM), loss="categorical_crossentropy",
                  metrics=list(metrics), backend=backend, jit_compile=jit_compile)
    return model


def random_batches(sizes, batch, count=8, seed=0):
    """``count`` batches ``(x, y)`` for the MLP ``sizes``: x standard normal, y one-hot of uniform
    labels, both float32 (each batch's x drawn before its labels)."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, sizes[0]), dtype=np.float32),
             np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], batch)]) for _ in range(count)]


def build_torch(sizes, weights, device, fused):
    import torch

    layers = []
    for i in range(len(sizes) - 1):
        linear = torch.nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights[2 * i].T)))
            linear.bias.copy_(torch.from_numpy(weights[2 * i + 1]))
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).to(device)
    kwargs = {"fused": True} if fused else {}
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, **kwargs)
    return net, optimizer


def torch_weights(net):
    out = []
    for module in net:
        if hasattr(module, "weight"):
            out += [module.weight.detach().cpu().numpy().T, module.bias.detach().cpu().numpy()]
    return out


# ---------------------------------------------------------------------- steppers
class TensornetStepper(Stepper):
    """Blocks of steps through ``fit``: ``run(count)`` is one ``fit`` call, one epoch over the
    next ``count + 1`` batches in order (``shuffle=False``, ``verbose=0``, no divergence guard:
    the step alone, as PyTorch's loop has none), its first step untimed."""

    def __init__(self, model, x, y, batch):
        self.model, self.x, self.y, self.batch = model, x, y, batch
        self.count = x.shape[0] // batch  # batches in x (x holds its batches tiled, see run_step_case)
        self.cycle, self.i = 8, 0
        self.sync = model.ops.synchronize

    def run(self, count):
        timer = StepTimer(self.sync)
        self._fit(count, timer)
        return timer.laps[1:]

    def _fit(self, count, timer):
        """One ``fit`` over the next ``count + 1`` batches, ``timer`` among its callbacks."""
        first = self.i % self.cycle
        if first + count + 1 > self.count:
            raise ValueError(f"a block of {count + 1} steps needs {first + count + 1} batches; x holds {self.count}")
        rows = slice(first * self.batch, (first + count + 1) * self.batch)
        self.model.fit(self.x[rows], self.y[rows], batch_size=self.batch, epochs=1, verbose=0,
                       shuffle=False, check_finite=False, callbacks=[timer])
        self.i += count + 1


class TorchStepper(Stepper):
    def __init__(self, net, optimizer, batches, device):
        import torch

        self.net, self.optimizer, self.batches, self.i = net, optimizer, batches, 0
        self.loss_fn = torch.nn.functional.cross_entropy
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step(self):
        xb, yb = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(xb), yb)
        loss.backward()
        self.optimizer.step()
        self.sync()


# ---------------------------------------------------------------------- cases
def run_step_case(name, sizes, batch, device, rounds, steps, warmup, check=True, block_seconds=None):
    import torch

    backend = "cupy" if device == "cuda" else "numpy"
    model = build_tensornet(sizes, backend)
    ops = model.ops
    weights = model.get_weights()
    rng = np.random.default_rng(123)
    n_batches = 8
    xs = [rng.standard_normal((batch, sizes[0]), dtype=np.float32) for _ in range(n_batches)]
    labels = [rng.integers(0, sizes[-1], batch) for _ in range(n_batches)]
    onehots = [np.eye(sizes[-1], dtype=np.float32)[lab] for lab in labels]
    # the 8 batches tiled so that any block of up to max(steps, warmup, 3) + 1 steps starting at
    # any of them is one contiguous slice: fit trains on it in order, as PyTorch cycles the batches
    tiles = -(-(n_batches + max(steps, warmup, 3) + 1) // n_batches)
    x_all, y_all = ops.asarray(np.concatenate(xs * tiles)), ops.asarray(np.concatenate(onehots * tiles))
    th_batches = [(torch.from_numpy(x).to(device), torch.from_numpy(lab).to(device))
                  for x, lab in zip(xs, labels)]

    steppers = {"tensornet": TensornetStepper(model, x_all, y_all, batch)}
    for label, fused in (("torch", False), ("torch_fused", True)):
        net, opt = build_torch(sizes, weights, device, fused)
        steppers[label] = TorchStepper(net, opt, th_batches, device)

    max_diff = None
    if check:  # same trajectory first: three identical steps, then compare every weight
        for stepper in steppers.values():
            stepper.run(2)
        a = model.get_weights()
        max_diff = 0.0
        for label in ("torch", "torch_fused"):
            b = torch_weights(steppers[label].net)
            max_diff = max(max_diff, max(float(np.max(np.abs(u - v))) for u, v in zip(a, b)))
        if max_diff > 1e-3:
            raise SystemExit(f"{name}: tensornet and PyTorch diverge after 3 steps (max |dw| = {max_diff:.2e})")
    steppers["gemm_floor"] = GemmFloor(ops, sizes, batch)
    times, per_block = time_interleaved(steppers, rounds, steps, warmup, block_seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    flops = gemm_flops(sizes, batch)
    return {"case": name, "sizes": list(sizes), "batch": batch, "device": device,
            "median_s": med, "samples_per_s": {k: batch / v for k, v in med.items()},
            "ratio_vs_torch": med["tensornet"] / med["torch"],
            "ratio_vs_torch_fused": med["tensornet"] / med["torch_fused"],
            "gemm_share": med["gemm_floor"] / med["tensornet"],
            "gemm_gflops": flops / med["gemm_floor"] / 1e9,
            "steps_timed": len(times["tensornet"]), "steps_per_block": per_block,
            "ratio_per_round_quartiles": paired_ratios(times, per_block, "tensornet", "torch"),
            "max_weight_diff_after_3_steps": max_diff,
            "tensornet_step": model.step_path}


def run_epoch_case(device, repeats, limit=None):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from tensornet.datasets import fashion_mnist
    from tensornet.utils import to_categorical

    name, sizes, batch, _ = EPOCH_CASE
    (x, y), _ = fashion_mnist.load_data()
    if limit:
        x, y = x[:limit], y[:limit]
    x = (x.reshape(len(x), -1).astype(np.float32) / 255.0)
    y_onehot = to_categorical(y, 10).astype(np.float32)
    backend = "cupy" if device == "cuda" else "numpy"
    model = build_tensornet(sizes, backend, metrics=["accuracy"])
    if device == "cuda":
        x_tn, y_tn = model.ops.asarray(x), model.ops.asarray(y_onehot)
    else:
        x_tn, y_tn = x, y_onehot
    net, opt = build_torch(sizes, model.get_weights(), device, fused=False)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))),
                        batch_size=batch, shuffle=True)
    torch.manual_seed(0)

    def tensornet_epoch():
        history = model.fit(x_tn, y_tn, batch_size=batch, epochs=1, verbose=0)
        return history.history["loss"][-1]

    def torch_epoch():
        total_loss, correct, seen = 0.0, 0, 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad()
            out = net(xb)
            loss = torch.nn.functional.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            total_loss += loss.item() * len(xb)
            correct += (out.argmax(1) == yb).sum().item()
            seen += len(xb)
        return total_loss / seen

    times = {"tensornet": [], "torch": []}
    losses = {"tensornet": [], "torch": []}
    for r in range(repeats):
        for label, fn in ((("tensornet", tensornet_epoch), ("torch", torch_epoch))[::1 if r % 2 == 0 else -1]):
            t0 = time.perf_counter()
            losses[label].append(fn())
            times[label].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"case": name, "sizes": list(sizes), "batch": batch, "device": device, "samples": int(len(x)),
            "median_s": med, "samples_per_s": {k: len(x) / v for k, v in med.items()},
            "ratio_vs_torch": med["tensornet"] / med["torch"], "epochs_timed": repeats,
            "first_epoch_loss": {k: v[0] for k, v in losses.items()}, "tensornet_step": model.step_path}


# ---------------------------------------------------------------------- running
def run_in_child(name, args):
    """Case ``name``'s result, measured in a fresh Python process, so that no case inherits
    another's threads, allocations or caches."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--device", args.device, "--cases", name,
                   "--rounds", str(args.rounds), "--steps", str(args.steps), "--epochs", str(args.epochs),
                   "--block-seconds", str(args.block_seconds),
                   "--no-save", "--in-process", "--result-json", str(out)] + ["--quick"] * args.quick
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"case {name} failed in its child process:\n{done.stderr}")
        result, = json.loads(out.read_text())
        return result


def run_case(name, args, rounds, steps, warmup):
    """Case ``name``'s result, measured in this process."""
    for case, sizes, batch, _, _ in CASES:
        if case == name:
            return run_step_case(name, sizes, batch, args.device, rounds, steps, warmup,
                                 block_seconds=args.block_seconds)
    return run_epoch_case(args.device, 1 if args.quick else args.epochs, limit=2000 if args.quick else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES) + "," + EPOCH_CASE[0],
                        help="comma-separated case names")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per case")
    parser.add_argument("--steps", type=int, default=20, help="steps per trainer per round (at most)")
    parser.add_argument("--block-seconds", type=float, default=0.3,
                        help="cut a trainer's block of steps to about this long (more rounds, same step count); 0: never")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per trainer (epoch case)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny counts, 2,000 samples, no files")
    parser.add_argument("--name", default=None,
                        help="results file stem (default: <device>-<cores>core-<YYYY-MM-DD>-compare)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--in-process", action="store_true",
                        help="run every case in this process (default: each case in a fresh child process)")
    parser.add_argument("--result-json", help=argparse.SUPPRESS)  # a child: write its results here
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: PyTorch sees no CUDA device")
    rounds, steps, warmup = (2, 2, 2) if args.quick else (args.rounds, args.steps, 10)
    wanted = args.cases.split(",")
    info = machine_info(args.device)
    header = (f"# {info['cpu']}, {info['cores']} cores, NumPy {info['numpy']} ({info['blas']}), "
              f"torch {info.get('torch')}, tensornet accel: {info['tensornet_accel']}, "
              f"tensornet BLAS: {info['tensornet_blas']}, device: {args.device}")
    print(header, flush=True)
    order = [c[0] for c in CASES if c[0] in wanted] + [EPOCH_CASE[0]] * (EPOCH_CASE[0] in wanted)
    in_process = args.in_process or args.result_json is not None
    results = []
    for name in order:
        results.append(run_case(name, args, rounds, steps, warmup) if in_process else run_in_child(name, args))
        print(f"  done {name}", file=sys.stderr, flush=True)
    if args.result_json is not None:
        Path(args.result_json).write_text(json.dumps(results, default=str))
        return results
    targets = {c[0]: (c[3], c[4]) for c in CASES}
    targets[EPOCH_CASE[0]] = (EPOCH_CASE[3], None)
    if args.device != "cpu":
        targets = {}
    table = format_table(results, targets)
    command = "python bench/compare.py " + " ".join(argv if argv is not None else sys.argv[1:])
    footer = ("ratio = tensornet / PyTorch default SGD (foreach); r.fused = against SGD(fused=True); "
              "gemm = the step's matrix products alone, one after the other, through tensornet's BLAS; "
              "share = gemm / tensornet.")
    spread = [f"{res['case']} {'/'.join(f'{q:.2f}' for q in res['ratio_per_round_quartiles'])} "
              f"({res['steps_per_block']} steps a block)" for res in results if res.get("ratio_per_round_quartiles")]
    if spread:
        footer += "\nratio per round, quartiles: " + "; ".join(spread)
    footer += "\ntensornet's step: " + "; ".join(f"{res['case']} {res['tensornet_step']}" for res in results
                                                if res.get("tensornet_step"))
    print(table)
    print(footer)
    if not args.quick and not args.no_save:
        now = datetime.datetime.now()
        stamp = now.strftime("%Y%m%d-%H%M%S")
        stem = args.name or f"{args.device}-{os.cpu_count()}core-{now:%Y-%m-%d}-compare"
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        info["load_average_after"] = os.getloadavg()
        payload = {"command": command.strip(), "when": stamp, "machine": info, "results": results,
                   "lr": LR, "momentum": MOMENTUM}
        (out / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
        (out / f"{stem}.txt").write_text(f"$ {command.strip()}\n{header}\n{table}\n{footer}\n")
        print(f"wrote {out / stem}.json and .txt")
    return results


if __name__ == "__main__":
    main()
