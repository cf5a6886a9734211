"""tensornet against PyTorch on the same networks: same initial weights, same batches, one process.

Each step case trains one network three ways from identical weights -- tensornet through
``fit``, PyTorch's idiomatic loop with the same optimizer's default implementation (foreach)
and with its ``fused=True`` one -- timed step by step, interleaved round by round (the order
rotates each round; a trainer's block of steps is cut to about ``--block-seconds``), so that a
burst of load from another process hits all of them alike. Before timing, the weights after
three identical steps are compared (the two libraries must train the same network: every weight
within 1e-3; skipped where Dropout draws different masks on each side).

Cases (float32, relu hidden layers, softmax and cross-entropy; SGD is lr 0.01 with Nesterov
momentum 0.9, Adam lr 0.001 with epsilon 1e-12 on both sides: Keras' Adam adds epsilon before
the bias correction, PyTorch's after, and only a negligible epsilon makes the two the same rule):

- 784-512-512-10 at batch 128 with SGD and with Adam, 784-64-10 at batch 32, 784-2048-2048-10
  at batch 256, and 784-512-512-10 with BatchNormalization and Dropout(0.2) after each hidden
  layer (PyTorch: ``BatchNorm1d(eps=1e-3, momentum=0.01)``, Keras' defaults);
- ``fmnist-epoch``: one whole Fashion-MNIST epoch (60,000 samples, batch 128, shuffled, loss and
  accuracy), after a warm-up of 20 batches each, through ``fit`` against PyTorch's fastest
  idiomatic loop (a ``randperm`` each epoch, batches taken by indexing the tensors, loss and
  accuracy summed as tensors: no ``.item()`` per batch) and, beside it, the ``DataLoader`` loop
  (``TensorDataset``, ``shuffle=True``);
- the CNN rows ``cnn-small`` (Conv(8, 3, same)-pool-Conv(16, 3)-pool-Dense(10)) and ``mnist-cnn``
  (Keras' mnist_cnn), batch 128: one Fashion-MNIST epoch of ``fit`` after a warm-up against the
  idiomatic PyTorch CPU loop for the same network and weights, interleaved, with the share of
  each step spent in GEMM or convolution calls -- bench/compare_cnn.py's networks, loops and
  measurement (``run_cnn_case``), imported. ``--cnn-samples``, ``--cnn-epochs``,
  ``--cnn-warmup`` and ``--cnn-profile-steps`` size them, ``--no-cnn`` skips them.

Beside the step cases the *GEMM floor*: only the matrix products one step needs (forward x W,
backward x^T dz and dz W^T, the first layer's dx skipped), one after the other, through the
BLAS tensornet's step uses (MKL where the ``mkl`` wheel is installed, else NumPy's), into
preallocated outputs. ``share`` is floor / tensornet step: the part of the step that is BLAS
work no framework can avoid.

    python bench/compare.py                    # every case: table + bench/results/<name>.{json,txt}
    python bench/compare.py --quick            # a smoke run (CI, bench/test_compare.py): tiny counts, no files
    python bench/compare.py --cases mlp-512-adam,fmnist-epoch --no-save
    python bench/compare.py --cases cnn-small,mnist-cnn --cnn-samples 60000 --no-save

GPU comparisons are bench/gpu_compare.py's (``--device cuda`` here says so).

Each case runs in a fresh child process (``--in-process``: all in this one), so that no case
inherits another's threads, allocations or caches.

tensornet's steps are timed where ``fit`` runs them, through the public API only: each block of
steps is one ``fit`` call over that many batches (``shuffle=False``), and a callback records the
wall-clock time from ``on_train_batch_begin`` to ``on_train_batch_end`` of each step (the first
step of every block, which follows fit's set-up, is not timed). ``model.step_path`` says which
step ``fit`` took (compiled or layered, and why); each row prints it and whether its target
(tensornet / PyTorch default, ratio of medians) is met.

Timings: median of per-step wall-clock times. Beside each ratio of medians, the quartiles of
the per-round ratio (tensornet's median step in a round over PyTorch's in the same round) show
how far the host moved it within the run.
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

import compare_cnn  # noqa: E402
from harness import (GemmFloor, Stepper, StepTimer, command_line, gemm_flops, machine_info,  # noqa: E402
                     paired_ratios, time_interleaved, write_record)
from tensornet.layers import BatchNormalization, Dense, Dropout  # noqa: E402
from tensornet.models import Sequential  # noqa: E402
from tensornet.optimizers import SGD, Adam  # noqa: E402

LR, MOMENTUM, ADAM_LR, ADAM_EPSILON, DROPOUT = 0.01, 0.9, 0.001, 1e-12, 0.2

#: (name, layer sizes, batch, optimizer, hidden block, target ratio against PyTorch's default
#: implementation of the optimizer)
CASES = [
    ("mlp-512", (784, 512, 512, 10), 128, "nesterov", "dense", 0.85),
    ("mlp-512-adam", (784, 512, 512, 10), 128, "adam", "dense", 0.85),
    ("mlp-64", (784, 64, 10), 32, "nesterov", "dense", 0.45),
    ("mlp-2048", (784, 2048, 2048, 10), 256, "nesterov", "dense", 0.95),
    ("mlp-512-bn-dropout", (784, 512, 512, 10), 128, "nesterov", "bn-dropout", 0.85),
]
#: (name, layer sizes, batch, optimizer, target ratio against PyTorch's randperm loop)
EPOCH_CASE = ("fmnist-epoch", (784, 512, 512, 10), 128, "nesterov", 0.85)
#: bench/compare_cnn.py's networks (its CASES hold their targets)
CNN_CASES = tuple(compare_cnn.CASES)
CASE_NAMES = [c[0] for c in CASES] + [EPOCH_CASE[0]] + list(CNN_CASES)


# ---------------------------------------------------------------------- models
def tensornet_optimizer(optimizer):
    """``"momentum"`` (SGD, momentum 0.9), ``"nesterov"`` (the same, Nesterov) or ``"adam"``."""
    if optimizer == "adam":
        return Adam(learning_rate=ADAM_LR, epsilon=ADAM_EPSILON)
    return SGD(lr=LR, momentum=MOMENTUM, nesterov=optimizer == "nesterov")


def build_tensornet(sizes, backend, seed=0, metrics=(), jit_compile="auto", optimizer="momentum", block="dense"):
    """The MLP ``sizes`` (relu hidden layers, softmax output, categorical cross-entropy); with
    ``block="bn-dropout"`` each hidden Dense is followed by BatchNormalization and Dropout."""
    if backend == "numpy" and os.environ.get("BENCH_REFERENCE_BACKEND"):
        # Backend's reference operations over NumPy, none of the fast paths
        from tensornet.backend import Backend

        backend = Backend()
    model = Sequential(seed=seed)
    for i, units in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        kwargs = {"input_shape": (sizes[0],)} if i == 0 else {}
        model.add(Dense(units, activation="softmax" if last else "relu", **kwargs))
        if not last and block == "bn-dropout":
            model.add(BatchNormalization())
            model.add(Dropout(DROPOUT, seed=seed + i))
    model.compile(optimizer=tensornet_optimizer(optimizer), loss="categorical_crossentropy",
                  metrics=list(metrics), backend=backend, jit_compile=jit_compile)
    return model


def random_batches(sizes, batch, count=8, seed=0):
    """``count`` batches ``(x, y)`` for the MLP ``sizes``: x standard normal, y one-hot of uniform
    labels, both float32 (each batch's x drawn before its labels)."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, sizes[0]), dtype=np.float32),
             np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], batch)]) for _ in range(count)]


def dense_weights(weights):
    """[(kernel (in, out), bias)] of the Dense layers in ``model.get_weights()``: each 2-D array
    and the array after it."""
    return [(w, weights[i + 1]) for i, w in enumerate(weights) if w.ndim == 2]


def build_torch(sizes, weights, optimizer="momentum", fused=False, block="dense"):
    """PyTorch's twin of :func:`build_tensornet` starting from tensornet's ``weights``, and its
    optimizer (``fused``: the ``fused=True`` implementation)."""
    import torch

    layers = []
    for i, (w, b) in enumerate(dense_weights(weights)):
        linear = torch.nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
            if block == "bn-dropout":
                layers += [torch.nn.BatchNorm1d(sizes[i + 1], eps=1e-3, momentum=0.01), torch.nn.Dropout(DROPOUT)]
    net = torch.nn.Sequential(*layers)
    kwargs = {"fused": True} if fused else {}
    if optimizer == "adam":
        return net, torch.optim.Adam(net.parameters(), lr=ADAM_LR, eps=ADAM_EPSILON, **kwargs)
    return net, torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, nesterov=optimizer == "nesterov",
                                **kwargs)


def torch_weights(net):
    out = []
    for module in net:
        if isinstance(module, __import__("torch").nn.Linear):
            out += [module.weight.detach().numpy().T, module.bias.detach().numpy()]
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
    """PyTorch's idiomatic step on the next of its batches: zero_grad, forward, loss, backward,
    step (no ``.item()``: nothing waits on the loss)."""

    def __init__(self, net, optimizer, batches):
        import torch

        self.net, self.optimizer, self.batches, self.i = net, optimizer, batches, 0
        self.loss_fn = torch.nn.functional.cross_entropy
        net.train()

    def step(self):
        xb, yb = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(xb), yb)
        loss.backward()
        self.optimizer.step()


# ---------------------------------------------------------------------- cases
def run_step_case(name, sizes, batch, rounds, steps, warmup, optimizer="nesterov", block="dense", check=True,
                  block_seconds=None):
    import torch

    model = build_tensornet(sizes, "numpy", optimizer=optimizer, block=block)
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
    th_batches = [(torch.from_numpy(x), torch.from_numpy(lab)) for x, lab in zip(xs, labels)]

    steppers = {"tensornet": TensornetStepper(model, x_all, y_all, batch)}
    for label, fused in (("torch", False), ("torch_fused", True)):
        net, opt = build_torch(sizes, weights, optimizer, fused, block)
        steppers[label] = TorchStepper(net, opt, th_batches)

    max_diff = None
    if check and block != "bn-dropout":  # same trajectory first: three identical steps, then every weight
        for stepper in steppers.values():
            stepper.run(2)
        a = [array for pair in dense_weights(model.get_weights()) for array in pair]
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
    return {"case": name, "sizes": list(sizes), "batch": batch, "optimizer": optimizer, "block": block,
            "median_s": med, "samples_per_s": {k: batch / v for k, v in med.items()},
            "ratio_vs_torch": med["tensornet"] / med["torch"],
            "ratio_vs_torch_fused": med["tensornet"] / med["torch_fused"],
            "gemm_share": med["gemm_floor"] / med["tensornet"],
            "gemm_gflops": flops / med["gemm_floor"] / 1e9,
            "steps_timed": len(times["tensornet"]), "steps_per_block": per_block,
            "ratio_per_round_quartiles": paired_ratios(times, per_block, "tensornet", "torch"),
            "max_weight_diff_after_3_steps": max_diff,
            "tensornet_step": model.step_path}


#: warm-up batches per trainer before the epoch case's timed epochs (compilation, first touch)
EPOCH_WARMUP = 20


def run_epoch_case(repeats, limit=None):
    """The ``fmnist-epoch`` row: after :data:`EPOCH_WARMUP` batches each (a fresh process
    compiles or loads tensornet's kernels there, PyTorch allocates), ``repeats`` timed epochs per
    trainer, the order rotating each round; medians, and every epoch's seconds in ``epoch_s``."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from tensornet.datasets import fashion_mnist
    from tensornet.utils import to_categorical

    name, sizes, batch, optimizer, _ = EPOCH_CASE
    (x, y), _ = fashion_mnist.load_data()
    if limit:
        x, y = x[:limit], y[:limit]
    x = (x.reshape(len(x), -1).astype(np.float32) / 255.0)
    y_onehot = to_categorical(y, 10).astype(np.float32)
    model = build_tensornet(sizes, "numpy", metrics=["accuracy"], optimizer=optimizer)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    fast_net, fast_opt = build_torch(sizes, model.get_weights(), optimizer)
    loader_net, loader_opt = build_torch(sizes, model.get_weights(), optimizer)
    loader = DataLoader(TensorDataset(xt, yt), batch_size=batch, shuffle=True)
    torch.manual_seed(0)
    n = len(x)

    def tensornet_epoch():
        history = model.fit(x, y_onehot, batch_size=batch, epochs=1, verbose=0)
        return history.history["loss"][-1]

    def torch_step(net, opt, xb, yb, sums):
        opt.zero_grad(set_to_none=True)
        out = net(xb)
        loss = torch.nn.functional.cross_entropy(out, yb)
        loss.backward()
        opt.step()
        with torch.no_grad():  # summed as tensors: no host sync per batch
            sums[0] += loss.detach() * len(xb)
            sums[1] += (out.argmax(1) == yb).sum()

    def torch_epoch():
        """The fastest idiomatic loop: a randperm, batches by indexing the tensors."""
        sums = [torch.zeros(()), torch.zeros((), dtype=torch.int64)]
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            index = perm[i:i + batch]
            torch_step(fast_net, fast_opt, xt[index], yt[index], sums)
        return float(sums[0]) / n

    def torch_loader_epoch():
        sums = [torch.zeros(()), torch.zeros((), dtype=torch.int64)]
        for xb, yb in loader:
            torch_step(loader_net, loader_opt, xb, yb, sums)
        return float(sums[0]) / n

    trainers = (("tensornet", tensornet_epoch), ("torch", torch_epoch), ("torch_dataloader", torch_loader_epoch))
    warm = min(n, EPOCH_WARMUP * batch)
    model.fit(x[:warm], y_onehot[:warm], batch_size=batch, epochs=1, verbose=0)
    for net, opt in ((fast_net, fast_opt), (loader_net, loader_opt)):
        sums = [torch.zeros(()), torch.zeros((), dtype=torch.int64)]
        for i in range(0, warm, batch):
            torch_step(net, opt, xt[i:i + batch], yt[i:i + batch], sums)
    times = {label: [] for label, _ in trainers}
    losses = {label: [] for label, _ in trainers}
    for r in range(repeats):
        for label, fn in trainers[r % 3:] + trainers[:r % 3]:
            time.sleep(0.15)
            t0 = time.perf_counter()
            losses[label].append(fn())
            times[label].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"case": name, "sizes": list(sizes), "batch": batch, "optimizer": optimizer, "block": "dense",
            "samples": int(n), "warmup_batches": -(-warm // batch), "median_s": med, "epoch_s": times,
            "samples_per_s": {k: n / v for k, v in med.items()},
            "ratio_vs_torch": med["tensornet"] / med["torch"],
            "ratio_vs_torch_dataloader": med["tensornet"] / med["torch_dataloader"], "epochs_timed": repeats,
            "first_epoch_loss": {k: v[0] for k, v in losses.items()}, "tensornet_step": model.step_path}


def format_table(results, targets):
    """The results table; sets each result's ``target_met``."""
    head = (f"{'case':<18} {'batch':>5} {'opt':>8} {'tensornet':>10} {'torch':>10} {'t.other':>10} {'ratio':>6} "
            f"{'r.other':>7} {'gemm':>9} {'share':>6} {'target':>7}  met  step")
    lines = [head, "-" * len(head)]
    for res in results:
        med, target = res["median_s"], targets.get(res["case"])
        ok = target is None or res["ratio_vs_torch"] <= target
        res["target_met"] = ok
        step = (res.get("tensornet_step") or "").split(" (")[0]
        if res["case"] in CNN_CASES:
            share = res["share_gemm_conv"]
            cells = (f"{med['tensornet']:>9.3f}s {med['torch']:>9.3f}s {'':>10} {res['ratio_vs_torch']:>6.2f} "
                     f"{'':>7} {'pt ' + format(share['torch'], '.0%'):>9} {share['tensornet'] * 100:>5.0f}%")
        elif "gemm_floor" in med:
            cells = (f"{med['tensornet'] * 1e3:>8.3f}ms {med['torch'] * 1e3:>8.3f}ms "
                     f"{med['torch_fused'] * 1e3:>8.3f}ms "
                     f"{res['ratio_vs_torch']:>6.2f} {res['ratio_vs_torch_fused']:>7.2f} "
                     f"{med['gemm_floor'] * 1e3:>7.3f}ms {res['gemm_share'] * 100:>5.0f}%")
        else:
            cells = (f"{med['tensornet']:>9.3f}s {med['torch']:>9.3f}s {med['torch_dataloader']:>9.3f}s "
                     f"{res['ratio_vs_torch']:>6.2f} {res['ratio_vs_torch_dataloader']:>7.2f} {'':>9} {'':>6}")
        lines.append(f"{res['case']:<18} {res['batch']:>5} {res['optimizer']:>8} {cells} "
                     f"{f'<={target:.2f}' if target else '':>7}  {'yes' if ok else 'NO ':<3}  {step}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- running
def run_in_child(name, args):
    """Case ``name``'s result, measured in a fresh Python process, so that no case inherits
    another's threads, allocations or caches."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--cases", name,
                   "--rounds", str(args.rounds), "--steps", str(args.steps), "--epochs", str(args.epochs),
                   "--block-seconds", str(args.block_seconds), "--cnn-samples", str(args.cnn_samples),
                   "--cnn-epochs", str(args.cnn_epochs), "--cnn-warmup", str(args.cnn_warmup),
                   "--cnn-profile-steps", str(args.cnn_profile_steps),
                   "--no-save", "--in-process", "--result-json", str(out)] + ["--quick"] * args.quick
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"case {name} failed in its child process:\n{done.stderr}")
        result, = json.loads(out.read_text())
        return result


def run_case(name, args, rounds, steps, warmup):
    """Case ``name``'s result, measured in this process."""
    for case, sizes, batch, optimizer, block, _ in CASES:
        if case == name:
            return run_step_case(name, sizes, batch, rounds, steps, warmup, optimizer, block,
                                 block_seconds=args.block_seconds)
    if name in CNN_CASES:
        result = compare_cnn.run_cnn_case(name, args.cnn_samples, args.cnn_epochs, args.cnn_warmup,
                                          args.cnn_profile_steps)
        result["optimizer"] = "momentum"
        return result
    return run_epoch_case(1 if args.quick else args.epochs, limit=2000 if args.quick else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu (the only one here: GPU comparisons are bench/gpu_compare.py's)")
    parser.add_argument("--cases", default=",".join(CASE_NAMES), help="comma-separated case names: "
                        + ", ".join(CASE_NAMES))
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per case")
    parser.add_argument("--steps", type=int, default=20, help="steps per trainer per round (at most)")
    parser.add_argument("--block-seconds", type=float, default=0.3,
                        help="cut a trainer's block of steps to about this long (more rounds, same step count); 0: never")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per trainer (epoch case)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny counts, 2,000 samples (CNN rows: --cnn-samples 512 at most), no files")
    parser.add_argument("--cnn-samples", type=int, default=60000, help="images per timed epoch (CNN rows)")
    parser.add_argument("--cnn-epochs", type=int, default=4,
                        help="timed epochs per trainer (CNN rows), the order alternating")
    parser.add_argument("--cnn-warmup", type=int, default=20, help="warm-up batches per trainer (CNN rows)")
    parser.add_argument("--cnn-profile-steps", type=int, default=40,
                        help="steps of the GEMM / convolution share measurement (CNN rows)")
    parser.add_argument("--no-cnn", action="store_true", help="skip the CNN rows")
    parser.add_argument("--name", default=None,
                        help="results file stem (default: cpu-<cores>core-<YYYY-MM-DD>-compare)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--in-process", action="store_true",
                        help="run every case in this process (default: each case in a fresh child process)")
    parser.add_argument("--result-json", help=argparse.SUPPRESS)  # a child: write its results here
    args = parser.parse_args(argv)
    if args.device == "cuda":
        raise SystemExit("compare.py measures the CPU; for tensornet on CuPy against PyTorch CUDA run "
                         "python bench/gpu_compare.py")
    wanted = args.cases.split(",")
    unknown = [name for name in wanted if name not in CASE_NAMES]
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}; the cases are {', '.join(CASE_NAMES)}")

    rounds, steps, warmup = (2, 2, 2) if args.quick else (args.rounds, args.steps, 10)
    if args.quick:
        args.cnn_samples, args.cnn_warmup = min(args.cnn_samples, 512), min(args.cnn_warmup, 2)
        args.cnn_epochs = min(args.cnn_epochs, 1)
        args.cnn_profile_steps = min(args.cnn_profile_steps, 2)
    if args.no_cnn:
        wanted = [name for name in wanted if name not in CNN_CASES]
    info = machine_info("cpu")
    header = (f"# {info['cpu']}, {info['cores']} cores, NumPy {info['numpy']} ({info['blas']}), "
              f"torch {info.get('torch')} ({info.get('torch_threads')} threads), tensornet accel: "
              f"{info['tensornet_accel']}, tensornet BLAS: {info['tensornet_blas']}, load average before "
              f"{'/'.join(f'{v:.2f}' for v in info.get('load_average', ()))}")
    print(header, flush=True)
    order = [name for name in CASE_NAMES if name in wanted]
    in_process = args.in_process or args.result_json is not None
    results = []
    for name in order:
        results.append(run_case(name, args, rounds, steps, warmup) if in_process else run_in_child(name, args))
        print(f"  done {name}", file=sys.stderr, flush=True)
    if args.result_json is not None:
        Path(args.result_json).write_text(json.dumps(results, default=str))
        return results
    targets = {c[0]: c[5] for c in CASES}
    targets[EPOCH_CASE[0]] = EPOCH_CASE[4]
    targets.update(compare_cnn.CASES)
    table = format_table(results, targets)
    command = command_line("compare.py", argv)
    load_after = os.getloadavg()
    footer = ("ratio = tensornet / PyTorch's default implementation of the optimizer (foreach); r.other = against "
              "its fused=True one (step cases) or the DataLoader loop (epoch case); gemm = the step's matrix "
              "products alone, one after the other, through tensornet's BLAS; share = gemm / tensornet; "
              "CNN rows: seconds per epoch, share = tensornet's time in GEMM / im2col / pooling calls over "
              "its step time, pt = PyTorch's in its convolution and matrix operators; "
              "target: ratio at most; step: the step fit took.")
    spread = [f"{res['case']} {'/'.join(f'{q:.2f}' for q in res['ratio_per_round_quartiles'])} "
              f"({res['steps_per_block']} steps a block)" for res in results if res.get("ratio_per_round_quartiles")]
    if spread:
        footer += "\nratio per round, quartiles: " + "; ".join(spread)
    paired = [f"{res['case']} " + ", ".join(f"{a / b:.2f}" for a, b in zip(res["epoch_s"]["tensornet"],
                                                                           res["epoch_s"]["torch"]))
              for res in results if res.get("epoch_s")]
    if paired:  # epoch r of each trainer ran one after the other
        footer += "\nepoch by epoch, tensornet / torch: " + "; ".join(paired)
    footer += "\ntensornet's step: " + "; ".join(f"{res['case']} {res['tensornet_step']}" for res in results
                                                if res.get("tensornet_step"))
    footer += f"\nload average after: {'/'.join(f'{v:.2f}' for v in load_after)}"
    print(table)
    print(footer)
    if not args.quick and not args.no_save:
        now = datetime.datetime.now()
        stamp = now.strftime("%Y%m%d-%H%M%S")
        stem = args.name or f"cpu-{os.cpu_count()}core-{now:%Y-%m-%d}-compare"
        info["load_average_after"] = load_after
        payload = {"when": stamp, "machine": info, "results": results,
                   "sgd": {"lr": LR, "momentum": MOMENTUM, "nesterov": True},
                   "adam": {"lr": ADAM_LR, "epsilon": ADAM_EPSILON}, "dropout": DROPOUT}
        write_record(stem, command, payload, header, table, footer)
    return results


if __name__ == "__main__":
    main()
