"""tensornet on the GPU (the CuPy backend) against PyTorch CUDA, eager and ``torch.compile``.

Step cases, each from identical initial weights and on the same batches, already on the GPU:

- ``mlp-512``: 784-512-512-10 at batch 128; ``mlp-2048``: 784-2048-2048-10 at batch 256;
- trainers: tensornet through ``fit`` (SGD, momentum 0.9; each block of steps one ``fit`` call,
  a callback timing ``on_train_batch_begin`` to ``on_train_batch_end`` after a synchronise),
  PyTorch eager (``torch.optim.SGD``, default foreach) and PyTorch with ``torch.compile`` on the
  model and on the optimizer step; each timed step ends with a device synchronise;
- before timing, the weights after three identical steps must agree (else the case fails):
  the three train the same network;
- the trainers are timed interleaved, round by round, the order rotating (bench/harness.py).

The epoch case trains one Fashion-MNIST epoch (60,000 samples, batch 128, shuffled, loss and
accuracy) with both sides' data already on the GPU: tensornet's ``fit`` on CuPy arrays; PyTorch
eager and compiled over a device permutation, indexing device tensors, without a DataLoader and
with the loss and correct count summed on the device (one ``.item()`` an epoch, not two a batch).
One untimed epoch each first (compilation, caches), then ``--epochs`` timed ones, interleaved.

No targets are set: the record states the ratios (tensornet time / PyTorch time, below 1 means
tensornet is faster) for the first GPU runs to set them from.

    python bench/gpu_compare.py --data /usr/share/datasets/fashion-mnist            # on a GPU
    python bench/gpu_compare.py --data DIR --jsonl bench/results/X-gpu-check.jsonl  # append the results
    python bench/gpu_compare.py --device cpu --quick --no-compile --data DIR --limit 1024  # smoke run (CI)
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from harness import Stepper, StepTimer, paired_ratios, time_interleaved  # noqa: E402

LR, MOMENTUM = 0.01, 0.9
CASES = [("mlp-512", (784, 512, 512, 10), 128), ("mlp-2048", (784, 2048, 2048, 10), 256)]
EPOCH_CASE = ("fmnist-epoch", (784, 512, 512, 10), 128)
TRAINERS = ("tensornet", "torch", "torch_compile")


class SetupError(SystemExit):
    """A missing piece (CuPy, a GPU, PyTorch CUDA, the data): exit status 3 with the reason."""

    CODE = 3


# ---------------------------------------------------------------------- models
def build_tensornet(sizes, backend, metrics=()):
    from tensornet.layers import Dense
    from tensornet.models import Sequential
    from tensornet.optimizers import SGD

    model = Sequential(seed=0)
    for i, units in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        kwargs = {"input_shape": (sizes[0],)} if i == 0 else {}
        model.add(Dense(units, activation="softmax" if last else "relu", **kwargs))
    model.compile(optimizer=SGD(learning_rate=LR, momentum=MOMENTUM), loss="categorical_crossentropy",
                  metrics=list(metrics), backend=backend)
    return model


def build_torch(sizes, weights, device, compiled):
    """The same MLP in PyTorch from tensornet's ``weights``; with ``compiled``, the module and the
    optimizer step go through ``torch.compile``. Returns ``(net, optimizer_step, optimizer)``."""
    import torch

    layers = []
    for i in range(len(sizes) - 1):
        linear = torch.nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights[2 * i].T)))
            linear.bias.copy_(torch.from_numpy(np.asarray(weights[2 * i + 1])))
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    if not compiled:
        return net, optimizer.step, optimizer
    return torch.compile(net), torch.compile(optimizer.step), optimizer


def torch_weights(net):
    net = getattr(net, "_orig_mod", net)
    out = []
    for module in net:
        if hasattr(module, "weight"):
            out += [module.weight.detach().cpu().numpy().T, module.bias.detach().cpu().numpy()]
    return out


# ---------------------------------------------------------------------- steppers
class TensornetStepper(Stepper):
    """Blocks of steps through ``fit``: ``run(count)`` is one ``fit`` over the next ``count + 1``
    batches in order (``shuffle=False``, no divergence guard: the step alone), the first one
    untimed (it follows fit's set-up)."""

    def __init__(self, model, x, y, batch, batches):
        self.model, self.x, self.y, self.batch, self.batches, self.i = model, x, y, batch, batches, 0

    def run(self, count):
        timer = StepTimer(self.model.ops.synchronize)
        first = self.i % self.batches
        rows = slice(first * self.batch, (first + count + 1) * self.batch)
        self.model.fit(self.x[rows], self.y[rows], batch_size=self.batch, epochs=1, verbose=0, shuffle=False,
                       check_finite=False, callbacks=[timer])
        self.i += count + 1
        return timer.laps[1:]


class TorchStepper(Stepper):
    def __init__(self, net, optimizer_step, optimizer, batches, sync):
        import torch

        self.net, self.optimizer_step, self.optimizer = net, optimizer_step, optimizer
        self.batches, self.sync, self.i = batches, sync, 0
        self.loss_fn = torch.nn.functional.cross_entropy

    def step(self):
        xb, yb = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_fn(self.net(xb), yb).backward()
        self.optimizer_step()
        self.sync()


def _sync(device):
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _backend(device):
    return "cupy" if device == "cuda" else "numpy"


# ---------------------------------------------------------------------- cases
def run_step_case(name, sizes, batch, device, rounds, steps, warmup, compile_torch=True):
    import torch

    model = build_tensornet(sizes, _backend(device))
    weights = model.get_weights()
    rng = np.random.default_rng(123)
    n_batches = 8
    xs = [rng.standard_normal((batch, sizes[0]), dtype=np.float32) for _ in range(n_batches)]
    labels = [rng.integers(0, sizes[-1], batch) for _ in range(n_batches)]
    onehots = [np.eye(sizes[-1], dtype=np.float32)[lab] for lab in labels]
    # the batches tiled so that any block of up to max(steps, warmup, 3) + 1 steps from any of
    # them is one contiguous slice, trained in order as PyTorch cycles through the same batches
    tiles = -(-(n_batches + max(steps, warmup, 3) + 1) // n_batches)
    ops = model.ops
    x_all, y_all = ops.asarray(np.concatenate(xs * tiles)), ops.asarray(np.concatenate(onehots * tiles))
    th_batches = [(torch.from_numpy(x).to(device), torch.from_numpy(lab).to(device)) for x, lab in zip(xs, labels)]
    steppers = {"tensornet": TensornetStepper(model, x_all, y_all, batch, n_batches)}
    for label in TRAINERS[1:] if compile_torch else TRAINERS[1:2]:
        net, step, optimizer = build_torch(sizes, weights, device, compiled=label == "torch_compile")
        steppers[label] = TorchStepper(net, step, optimizer, th_batches, _sync(device))
    for stepper in steppers.values():  # three identical steps, then every weight compared
        stepper.run(2)
    reference = model.get_weights()
    max_diff = 0.0
    for label, stepper in steppers.items():
        if label != "tensornet":
            got = torch_weights(stepper.net)
            max_diff = max(max_diff, max(float(np.max(np.abs(u - v))) for u, v in zip(reference, got)))
    if max_diff > 1e-3:
        raise SystemExit(f"{name}: tensornet and PyTorch diverge after 3 steps (max |dw| = {max_diff:.2e})")
    times, per_block = time_interleaved(steppers, rounds, steps, warmup)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"kind": "step", "case": name, "sizes": list(sizes), "batch": batch, "device": device,
            "median_s": med, "samples_per_s": {k: batch / v for k, v in med.items()},
            "ratios": {k: med["tensornet"] / med[k] for k in med if k != "tensornet"},
            "ratio_per_round_quartiles": {k: paired_ratios(times, per_block, "tensornet", k)
                                          for k in med if k != "tensornet"},
            "steps_timed": len(times["tensornet"]), "max_weight_diff_after_3_steps": max_diff,
            "tensornet_step": model.step_path}


def load_epoch_data(data_dir, limit=None):
    """Fashion-MNIST's training set from ``data_dir``: pixels as float32 in [0, 1], flattened,
    and integer labels (SetupError when the directory does not hold it)."""
    from tensornet.datasets import fashion_mnist

    try:
        (x, y), _ = fashion_mnist.load_data(data_dir)
    except (OSError, ValueError) as exc:
        raise SetupError(f"--data {data_dir}: cannot load Fashion-MNIST there ({exc})") from None
    if limit:
        x, y = x[:limit], y[:limit]
    return x.reshape(len(x), -1).astype(np.float32) / 255.0, y.astype(np.int64)


def run_epoch_case(device, data_dir, epochs, limit=None, compile_torch=True):
    import torch

    from tensornet.utils import to_categorical

    name, sizes, batch = EPOCH_CASE
    x, y = load_epoch_data(data_dir, limit)
    n = len(x)
    model = build_tensornet(sizes, _backend(device), metrics=["accuracy"])
    x_tn, y_tn = model.ops.asarray(x), model.ops.asarray(to_categorical(y, 10).astype(np.float32))
    x_th, y_th = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    torch.manual_seed(0)
    sync = _sync(device)

    def tensornet_epoch():
        history = model.fit(x_tn, y_tn, batch_size=batch, epochs=1, verbose=0)
        model.ops.synchronize()
        return history.history["loss"][-1], history.history["accuracy"][-1]

    def torch_epoch_of(net, optimizer_step, optimizer):
        def epoch():
            order = torch.randperm(n, device=device)
            total = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            for start in range(0, n, batch):
                index = order[start:start + batch]
                xb, yb = x_th[index], y_th[index]
                optimizer.zero_grad(set_to_none=True)
                out = net(xb)
                loss = torch.nn.functional.cross_entropy(out, yb)
                loss.backward()
                optimizer_step()
                total += loss.detach() * len(index)
                correct += (out.argmax(1) == yb).sum()
            sync()
            return total.item() / n, correct.item() / n
        return epoch

    trainers = {"tensornet": tensornet_epoch}
    for label in TRAINERS[1:] if compile_torch else TRAINERS[1:2]:
        trainers[label] = torch_epoch_of(*build_torch(sizes, model.get_weights(), device,
                                                      compiled=label == "torch_compile"))
    first = {label: fn() for label, fn in trainers.items()}  # untimed: compilation and caches
    times = {label: [] for label in trainers}
    names = list(trainers)
    for r in range(epochs):
        for label in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            trainers[label]()
            times[label].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"kind": "epoch", "case": name, "sizes": list(sizes), "batch": batch, "device": device,
            "samples": int(n), "median_s": med, "samples_per_s": {k: n / v for k, v in med.items()},
            "ratios": {k: med["tensornet"] / med[k] for k in med if k != "tensornet"},
            "epochs_timed": epochs, "first_epoch_loss_accuracy": first, "tensornet_step": model.step_path}


# ---------------------------------------------------------------------- report
def format_table(results):
    labels = [k for k in TRAINERS if any(k in r["median_s"] for r in results)]
    head = f"{'case':<13} {'batch':>5} " + " ".join(f"{k:>14}" for k in labels) + " " + \
        " ".join(f"{'tn/' + k:>17}" for k in labels[1:]) + f" {'tn samples/s':>13}"
    lines = [head, "-" * len(head)]
    for res in results:
        unit, scale = ("ms", 1e3) if res["kind"] == "step" else ("s", 1.0)
        cells = " ".join(f"{res['median_s'][k] * scale:>12.3f}{unit:<2}" if k in res["median_s"] else f"{'':>14}"
                         for k in labels)
        ratios = " ".join(f"{res['ratios'][k]:>17.2f}" if k in res["ratios"] else f"{'':>17}" for k in labels[1:])
        lines.append(f"{res['case']:<13} {res['batch']:>5} {cells} {ratios} "
                     f"{res['samples_per_s']['tensornet']:>13,.0f}")
    lines.append("ratio = tensornet's median time / PyTorch's (below 1: tensornet faster); no targets set")
    return "\n".join(lines)


def check_setup(device):
    """SetupError naming what is missing for ``device``: PyTorch, its CUDA, CuPy or a GPU."""
    try:
        import torch
    except ImportError as exc:
        raise SetupError(f"PyTorch is not installed ({exc}): the comparison needs it") from None
    if device == "cuda":
        from tensornet.backend import cupy_status

        usable, reason = cupy_status()
        if not usable:
            raise SetupError(f"--device cuda needs CuPy and a GPU: {reason}")
        if not torch.cuda.is_available():
            raise SetupError(f"--device cuda: PyTorch {torch.__version__} sees no CUDA device "
                             f"(built for CUDA {torch.version.cuda})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", metavar="DIR", required=True, help="directory holding the Fashion-MNIST IDX files")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (default); cpu runs the same code on the NumPy backend and PyTorch CPU (smoke)")
    parser.add_argument("--cases", default="mlp-512,mlp-2048,fmnist-epoch")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per trainer (after an untimed one)")
    parser.add_argument("--limit", type=int, default=None, help="train the epoch case on the first N samples")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile trainer")
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke run, not a measurement)")
    parser.add_argument("--jsonl", metavar="PATH", default=None, help="append each result as one JSON line")
    args = parser.parse_args(argv)
    if not Path(args.data).is_dir():
        raise SetupError(f"--data {args.data}: no such directory (it must hold the four Fashion-MNIST IDX files)")
    check_setup(args.device)
    if args.quick:
        args.rounds, args.steps, args.warmup, args.epochs = 2, 3, 1, 1
    known = [c[0] for c in CASES] + [EPOCH_CASE[0]]
    wanted = [c for c in args.cases.split(",") if c]
    unknown = [c for c in wanted if c not in known]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(known)}")
    results = []
    for name, sizes, batch in CASES:
        if name in wanted:
            results.append(run_step_case(name, sizes, batch, args.device, args.rounds, args.steps, args.warmup,
                                         compile_torch=not args.no_compile))
            print(f"{name}: done", flush=True)
    if EPOCH_CASE[0] in wanted:
        results.append(run_epoch_case(args.device, args.data, args.epochs, args.limit,
                                      compile_torch=not args.no_compile))
    print(format_table(results), flush=True)
    if args.jsonl:
        with open(args.jsonl, "a", encoding="utf-8") as f:
            for result in results:
                f.write(json.dumps({"step": "benchmark", **result}, default=float) + "\n")
    return results


if __name__ == "__main__":
    try:
        main()
    except SetupError as missing:
        print(f"gpu_compare: {missing.args[0]}", file=sys.stderr)
        sys.exit(SetupError.CODE)
