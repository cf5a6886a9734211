"""tensornet against PyTorch on the same MLP: same initial weights, same batches, one process.

For each size, three trainers start from identical weights -- tensornet (SGD, momentum 0.9),
PyTorch with its default SGD (foreach) and PyTorch with ``SGD(fused=True)`` -- and are timed
step by step, interleaved round by round (the order rotates each round; a trainer's block of
steps is cut to about ``--block-seconds``), so that a burst of load from another process hits
all of them alike. Before timing, the weights after a few
identical steps are compared (the two libraries must train the same network).

Beside them the *GEMM floor*: only the matrix products one step needs (forward x W, backward
x^T dz and dz W^T, the first layer's dx skipped), one after the other, through the BLAS
tensornet's step uses (MKL where the ``mkl`` wheel is installed, else NumPy's), into
preallocated outputs. ``share`` is floor / tensornet step: the part of the step that is BLAS
work no framework can avoid.

The epoch row trains one whole Fashion-MNIST epoch through ``fit`` (60,000 samples, batch
128, shuffling, accuracy) against the idiomatic PyTorch loop (DataLoader over a
TensorDataset, shuffle=True, loss and accuracy summed per batch).

    python bench/compare.py                    # every case, table + bench/results/<name>.json/.txt
    python bench/compare.py --quick            # a smoke run (CI, bench/test_compare.py): tiny counts, no files
    python bench/compare.py --device cuda      # tensornet on CuPy against PyTorch CUDA

Each case runs in a fresh child process (``--in-process``: all in this one), so that no case
inherits another's threads, allocations or caches.

Timings: median of per-step wall-clock times (on a GPU each step ends with a synchronise).
Beside each ratio of medians, the quartiles of the per-round ratio (tensornet's median step in a
round over PyTorch's in the same round) show how far the host moved it within the run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tensornet as tn  # noqa: E402
from tensornet.layers import Dense  # noqa: E402
from tensornet.models import Sequential  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402
from tensornet.trainer import EpochTotals  # noqa: E402

LR, MOMENTUM = 0.01, 0.9

#: (name, layer sizes, batch, target ratio against PyTorch's default SGD, minimum GEMM share)
CASES = [
    ("mlp-512", (784, 512, 512, 10), 128, 0.90, 0.80),
    ("mlp-64", (784, 64, 10), 32, 0.50, None),
    ("mlp-2048", (784, 2048, 2048, 10), 256, 0.95, None),
]
EPOCH_CASE = ("fmnist-epoch", (784, 512, 512, 10), 128, 0.90)


# ---------------------------------------------------------------------- machine
def machine_info(device):
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": _cpu_model(), "cores": os.cpu_count(), "numpy": np.__version__,
            "tensornet": getattr(tn, "__version__", "?")}
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy
        info["blas"] = "unknown"
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_blas"] = "MKL" if torch.backends.mkl.is_available() else "other"
    except ImportError:
        info["torch"] = None
    for name in ("numba", "numexpr", "cupy"):
        try:
            info[name] = __import__(name).__version__
        except Exception:
            info[name] = None
    from tensornet.backend import get_backend

    ops = get_backend("cupy" if device == "cuda" else "numpy")
    info["tensornet_backend"] = ops.name
    info["tensornet_accel"] = getattr(ops, "accelerator", "numpy")
    info["tensornet_blas"] = tensornet_blas(ops, info["blas"])
    if os.environ.get("BENCH_REFERENCE_BACKEND"):
        info["tensornet_accel"] = "reference Backend (BENCH_REFERENCE_BACKEND=1)"
    info["device"] = ops.device_info()
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def tensornet_blas(ops, numpy_blas):
    """The BLAS a training step's products go to: MKL (with its version) or NumPy's, and whether
    it runs on the shared pool (inside fit, as compare.py times it)."""
    threads = getattr(ops, "_blas_threads", None)
    if threads is None:
        return "cuBLAS" if ops.name == "cupy" else numpy_blas
    ops.start()
    try:
        ops.matmul(np.ones((256, 256), np.float32), np.ones((256, 256), np.float32))  # a threaded product
        mkl, shared = threads.mkl, threads.shared
    finally:
        ops.finish()
    where = "on the shared OpenMP pool" if shared else "on its own threads"
    return f"{mkl.version if mkl is not None else numpy_blas} ({where})"


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------- models
def build_tensornet(sizes, backend, seed=0, metrics=()):
    if backend == "numpy" and os.environ.get("BENCH_REFERENCE_BACKEND"):
        # the "before" of bench/NOTES.md: Backend's reference operations, none of the fast paths
        from tensornet.backend.base import Backend

        backend = Backend()
    model = Sequential(seed=seed)
    for i, units in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        kwargs = {"input_shape": (sizes[0],)} if i == 0 else {}
        model.add(Dense(units, activation="softmax" if last else "relu", **kwargs))
    model.compile(optimizer=SGD(lr=LR, momentum=MOMENTUM), loss="categorical_crossentropy",
                  metrics=list(metrics), backend=backend)
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
class TensornetStepper:
    def __init__(self, model, batches):
        self.model, self.batches, self.i = model, batches, 0
        self.totals = EpochTotals(model.ops, model.metrics)
        self.sync = model.ops.synchronize

    def step(self):
        xb, yb = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.model._trainer.train_step(xb, yb, self.totals)
        self.sync()


class TorchStepper:
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


class GemmFloor:
    """Only the matrix products of one training step, one after the other, through the BLAS the
    backend's step uses (``xp.matmul``: NumPy's OpenBLAS -- on the shared pool inside fit -- or
    CuPy's cuBLAS; with ``mkl``, MKL's GEMM called directly with its arguments prepared, so the
    floor carries no framework overhead)."""

    def __init__(self, xp, sizes, batch, sync, mkl=None):
        rng = np.random.default_rng(1)
        f = lambda *shape: xp.asarray(rng.standard_normal(shape, dtype=np.float32))  # noqa: E731
        self.sync = sync
        self.products = []
        for i in range(len(sizes) - 1):
            x, w, dz = f(batch, sizes[i]), f(sizes[i], sizes[i + 1]), f(batch, sizes[i + 1])
            self.products.append((x, w, xp.empty((batch, sizes[i + 1]), np.float32)))        # z = x W
            self.products.append((x.T, dz, xp.empty((sizes[i], sizes[i + 1]), np.float32)))   # dW = x^T dz
            if i > 0:
                self.products.append((dz, w.T, xp.empty((batch, sizes[i]), np.float32)))      # dx = dz W^T
        self.matmul = xp.matmul
        self.calls = None
        if mkl is not None:
            from tensornet.backend.numpy_backend import _blas_params

            self.calls = [(mkl.functions[out.dtype.char], _blas_params(a, b, out)) for a, b, out in self.products]
            self.calls = [(fn, (101, ta, tb, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 0.0,
                                out.ctypes.data, ldc))
                          for fn, (ta, tb, m, n, k, a, lda, b, ldb, out, ldc) in self.calls]

    def step(self):
        if self.calls is not None:
            for function, args in self.calls:
                function(*args)
        else:
            for a, b, out in self.products:
                self.matmul(a, b, out=out)
        self.sync()


def gemm_flops(sizes, batch):
    total = 0
    for i in range(len(sizes) - 1):
        per = 2 * batch * sizes[i] * sizes[i + 1]
        total += per * (3 if i > 0 else 2)
    return total


def time_interleaved(steppers, rounds, steps, warmup, block_seconds=None):
    """({name: [per-step seconds]}, steps per block): rounds in which every stepper runs a block
    of steps in turn, the order rotating each round.

    With ``block_seconds``, a block is cut to about that long (at least one step, at most
    ``steps``) and the rounds are raised so that each stepper still takes ``rounds * steps``
    timed steps. This host switches between a quiet and a loaded state within a second or two
    (bench/NOTES.md, session 8): with 1.5 s blocks (20 steps of the 2048 case) one trainer's
    block could fall in one state and the next trainer's in the other; with short blocks each
    state is shared out among the trainers alike. Cases with short steps keep ``steps`` per
    block, so that each block still runs on caches its own steps left warm."""
    clock = time.perf_counter
    warm = {}
    for name, stepper in steppers.items():
        laps = []
        for _ in range(warmup):
            t0 = clock()
            stepper.step()
            laps.append(clock() - t0)
        warm[name] = statistics.median(laps) if laps else 0.0
    per_block = steps
    slowest = max(warm.values(), default=0.0)
    if block_seconds and slowest > 0:
        per_block = max(1, min(steps, round(block_seconds / slowest)))
        rounds = -(-rounds * steps // per_block)
    times = {name: [] for name in steppers}
    names = list(steppers)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            step, record = steppers[name].step, times[name].append
            # let the previous block's idle threads (OpenBLAS spins ~0.1 s after a product,
            # OpenMP a little) go to sleep: each trainer is timed as it runs on its own
            time.sleep(0.15)
            step()
            for _ in range(per_block):
                t0 = clock()
                step()
                record(clock() - t0)
    return times, per_block


def paired_ratios(times, per_block, name, reference):
    """Quartiles (25, 50, 75 %) over the rounds of (``name``'s median step in the round) /
    (``reference``'s): how far the ratio moves with the host's state within one run."""
    a, b = times[name], times[reference]
    ratios = sorted(statistics.median(a[i:i + per_block]) / statistics.median(b[i:i + per_block])
                    for i in range(0, min(len(a), len(b)), per_block))
    if len(ratios) < 2:
        return [ratios[0]] * 3 if ratios else []
    return statistics.quantiles(ratios, n=4, method="inclusive")


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
    tn_batches = [(ops.asarray(x), ops.asarray(y)) for x, y in zip(xs, onehots)]
    th_batches = [(torch.from_numpy(x).to(device), torch.from_numpy(lab).to(device))
                  for x, lab in zip(xs, labels)]

    steppers = {"tensornet": TensornetStepper(model, tn_batches)}
    for label, fused in (("torch", False), ("torch_fused", True)):
        net, opt = build_torch(sizes, weights, device, fused)
        steppers[label] = TorchStepper(net, opt, th_batches, device)

    max_diff = None
    xp = ops.xp
    ops.start()  # as fit does: BLAS on the shared pool where it can be (the floor's products too)
    try:
        model._trainer.prepare_step(batch)  # as fit does: the compiled step where the model allows it
        if check:  # same trajectory first: a few identical steps, then compare every weight
            for _ in range(3):
                for stepper in steppers.values():
                    stepper.step()
            a = model.get_weights()
            max_diff = 0.0
            for label in ("torch", "torch_fused"):
                b = torch_weights(steppers[label].net)
                max_diff = max(max_diff, max(float(np.max(np.abs(u - v))) for u, v in zip(a, b)))
            if max_diff > 1e-3:
                raise SystemExit(f"{name}: tensornet and PyTorch diverge after 3 steps (max |dw| = {max_diff:.2e})")
        ops.matmul(*steppers["tensornet"].batches[0][:1], model.layers[0].weights["kernel"])  # loads it
        blas_threads = getattr(ops, "_blas_threads", None)
        mkl = blas_threads.mkl if blas_threads is not None else None
        steppers["gemm_floor"] = GemmFloor(xp, sizes, batch, ops.synchronize, mkl=mkl)
        times, per_block = time_interleaved(steppers, rounds, steps, warmup, block_seconds)
    finally:
        ops.finish()
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
            "tensornet_step": model._trainer.step_path}


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
            "first_epoch_loss": {k: v[0] for k, v in losses.items()}, "tensornet_step": model._trainer.step_path}


# ---------------------------------------------------------------------- report
def format_table(results, targets):
    lines = []
    head = (f"{'case':<10} {'batch':>5} {'tensornet':>10} {'torch':>9} {'t.fused':>9} {'ratio':>6} "
            f"{'r.fused':>7} {'gemm':>8} {'share':>6} {'tn samples/s':>13} {'target':>10}  met")
    lines.append(head)
    lines.append("-" * len(head))
    for res in results:
        med = res["median_s"]
        target = targets.get(res["case"], (None, None))
        ok = target[0] is None or res["ratio_vs_torch"] <= target[0]
        tgt = f"<={target[0]:.2f}" if target[0] else ""
        if "gemm_floor" in med:
            if target[1] is not None:
                ok = ok and res["gemm_share"] >= target[1]
                tgt += f",{int(target[1] * 100)}%"
            lines.append(
                f"{res['case']:<10} {res['batch']:>5} {med['tensornet'] * 1e3:>8.3f}ms {med['torch'] * 1e3:>7.3f}ms "
                f"{med['torch_fused'] * 1e3:>7.3f}ms {res['ratio_vs_torch']:>6.2f} {res['ratio_vs_torch_fused']:>7.2f} "
                f"{med['gemm_floor'] * 1e3:>6.3f}ms {res['gemm_share'] * 100:>5.0f}% "
                f"{res['samples_per_s']['tensornet']:>13,.0f} {tgt:>10}  {'yes' if ok else 'NO'}")
        else:
            lines.append(
                f"{res['case']:<10} {res['batch']:>5} {med['tensornet']:>9.3f}s {med['torch']:>8.3f}s "
                f"{'':>9} {res['ratio_vs_torch']:>6.2f} {'':>7} {'':>8} {'':>6} "
                f"{res['samples_per_s']['tensornet']:>13,.0f} {tgt:>10}  {'yes' if ok else 'NO'}")
        res["target_met"] = ok
    return "\n".join(lines)


def run_in_child(name, args):
    """Case ``name``'s result, measured in a fresh Python process, so that no case inherits
    another's threads, allocations or caches. (I suspected that 784-2048-2048-10 suffered after the
    other cases: 0.88 alone, 0.98-1.03 after them. Per-case processes then gave 0.83 and 1.02 in
    two runs: the host's noise is larger than any such effect; bench/NOTES.md, session 7.)"""
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
    parser.add_argument("--name", default=None, help="results file stem (default: <device>-<date>)")
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
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        stem = args.name or f"{args.device}-{stamp}"
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
