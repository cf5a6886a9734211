"""tensornet against PyTorch on two CNNs: one Fashion-MNIST epoch of ``fit`` against the
idiomatic PyTorch CPU loop, the same network with the same initial weights, interleaved.

Networks (the issue's two):

- ``cnn-small``: Conv(8, 3, same, relu) - MaxPool(2) - Conv(16, 3, relu) - MaxPool(2) - Flatten -
  Dense(10, softmax), batch 128;
- ``mnist-cnn``: Keras' mnist_cnn: Conv(32, 3, relu) - Conv(64, 3, relu) - MaxPool(2) -
  Dropout(0.25) - Flatten - Dense(128, relu) - Dropout(0.5) - Dense(10, softmax), batch 128.

Both trainers start from identical weights (kernels (kh, kw, in, out) transposed to PyTorch's
(out, in, kh, kw); the first Dense kernel's rows permuted from tensornet's (h, w, c) flattening
order to PyTorch's (c, h, w)); SGD lr 0.01, momentum 0.9, cross-entropy on integer labels,
accuracy counted. tensornet: ``model.fit(x, y, batch_size=128, epochs=1, verbose=0)`` (shuffled,
the last partial batch trained on). PyTorch: each epoch ``torch.randperm``, index the tensors,
``zero_grad / forward / cross_entropy / backward / step``, loss and correct count summed as
tensors (no ``.item()`` per batch), no DataLoader.

After a warm-up (``--warmup`` batches each, compilation and allocation paid there) each
trainer times ``--epochs`` epochs over ``--samples`` images, alternating which goes first.
Then ``share``: tensornet's time in the backend's matrix products and im2col / col2im /
pooling calls over ``--profile-steps`` steps of ``fit`` (the backend's methods wrapped with a
timer), and PyTorch's in its convolution and matrix-product operators (torch.profiler, self
time), each over its whole step time.

    python bench/compare_cnn.py                  # both networks: table + bench/results/<name>.{json,txt}
    python bench/compare_cnn.py --quick          # a smoke run: 1,024 samples, no files
    python bench/compare_cnn.py --cases cnn-small --epochs 2

bench/compare.py can run these as its CNN rows by calling ``run_cnn_case(name, samples,
epochs, warmup, profile_steps)`` (one dict per case, the fields of the results file).
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import command_line, machine_info, write_record  # noqa: E402
from tensornet.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D  # noqa: E402
from tensornet.models import Sequential  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402

LR, MOMENTUM, BATCH = 0.01, 0.9, 128
#: name: (target ratio against PyTorch's epoch time)
CASES = {"cnn-small": 1.0, "mnist-cnn": 1.0}
#: the backend methods whose time counts as "GEMM or convolution" in tensornet's share
TIMED_OPS = ("matmul", "matmuls", "im2col", "col2im", "max_pool2d", "max_pool2d_backward")
TORCH_OPS = ("conv", "mm", "addmm", "max_pool", "linear")


# ---------------------------------------------------------------------- networks
def build_tensornet(name, seed=0, backend=None):
    """The network ``name`` compiled with SGD (momentum) on ``backend`` (None: the default one)."""
    if name == "cnn-small":
        layers = [Conv2D(8, 3, padding="same", activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(),
                  Conv2D(16, 3, activation="relu"), MaxPooling2D(), Flatten(), Dense(10, activation="softmax")]
    else:
        layers = [Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)), Conv2D(64, 3, activation="relu"),
                  MaxPooling2D(), Dropout(0.25), Flatten(), Dense(128, activation="relu"), Dropout(0.5),
                  Dense(10, activation="softmax")]
    model = Sequential(layers, seed=seed)
    model.compile(optimizer=SGD(lr=LR, momentum=MOMENTUM), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], backend=backend)
    return model


def build_torch(name, model):
    """PyTorch's network for ``name`` holding ``model``'s weights."""
    import torch

    nn = torch.nn
    if name == "cnn-small":
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 6 * 6, 10))
    else:
        net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Dropout(0.25), nn.Flatten(), nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.5),
                            nn.Linear(128, 10))
    weights = iter(model.get_weights())
    h, w, c = next(layer for layer in model.layers if isinstance(layer, Flatten)).input_shape
    flattened = None
    with torch.no_grad():
        for module in net:
            if isinstance(module, nn.Conv2d):
                module.weight.copy_(torch.from_numpy(np.ascontiguousarray(next(weights).transpose(3, 2, 0, 1))))
                module.bias.copy_(torch.from_numpy(next(weights)))
            elif isinstance(module, nn.Linear):
                kernel = next(weights)
                if flattened is None:  # rows (h, w, c) -> PyTorch's (c, h, w) flattening
                    kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
                    flattened = True
                module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
                module.bias.copy_(torch.from_numpy(next(weights)))
    return net, torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)


def load_images(samples):
    from tensornet.datasets import fashion_mnist

    (x, y), _ = fashion_mnist.load_data()
    x = (x[:samples].astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    return x, y[:samples].astype(np.int64)


# ---------------------------------------------------------------------- trainers
def torch_epoch(net, opt, xt, yt):
    """The idiomatic loop: randperm, index, step; sums kept as tensors (no .item() per batch)."""
    import torch

    net.train()
    n = len(yt)
    total, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
    perm = torch.randperm(n)
    for start in range(0, n, BATCH):
        index = perm[start:start + BATCH]
        xb, yb = xt[index], yt[index]
        opt.zero_grad()
        out = net(xb)
        loss = torch.nn.functional.cross_entropy(out, yb)
        loss.backward()
        opt.step()
        total += loss.detach() * len(index)
        correct += (out.argmax(1) == yb).sum()
    return float(total) / n, int(correct) / n


def tensornet_share(model, x, y, steps):
    """(time in TIMED_OPS, whole time) over ``steps`` steps of fit, the backend's methods timed."""
    ops = model.ops
    spent = [0.0]
    originals = {}
    depth = [0]

    def timed(method):
        def wrapper(*args, **kwargs):
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:  # a product inside a timed call is counted once
                    spent[0] += time.perf_counter() - t0
        return wrapper

    for name in TIMED_OPS:
        originals[name] = getattr(ops, name)
        setattr(ops, name, timed(originals[name]))
    try:
        rows = slice(0, steps * BATCH)
        t0 = time.perf_counter()
        model.fit(x[rows], y[rows], batch_size=BATCH, epochs=1, verbose=0)
        whole = time.perf_counter() - t0
    finally:
        for name in TIMED_OPS:
            delattr(ops, name)
    return spent[0], whole


def torch_share(net, opt, xt, yt, steps):
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        torch_epoch(net, opt, xt[:steps * BATCH], yt[:steps * BATCH])
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    kernels = sum(e.self_cpu_time_total for e in events
                  if any(word in e.key.lower() for word in TORCH_OPS))
    return kernels / 1e6, total / 1e6


def run_cnn_case(name, samples=60000, epochs=1, warmup=20, profile_steps=40):
    import torch

    x, y = load_images(samples)
    model = build_tensornet(name)
    net, opt = build_torch(name, model)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y)
    with torch.no_grad():  # the same network: identical outputs on a batch before training
        ours = model.predict(x[:64], verbose=0)
        net.eval()
        theirs = torch.softmax(net(xt[:64]), 1).numpy()
    start_diff = float(np.max(np.abs(ours - theirs)))
    torch.manual_seed(0)
    rows = slice(0, warmup * BATCH)
    model.fit(x[rows], y[rows], batch_size=BATCH, epochs=1, verbose=0)
    torch_epoch(net, opt, xt[rows], yt[rows])
    times = {"tensornet": [], "torch": []}
    results = {"tensornet": [], "torch": []}
    for r in range(epochs):
        order = ("tensornet", "torch") if r % 2 == 0 else ("torch", "tensornet")
        for label in order:
            t0 = time.perf_counter()
            if label == "tensornet":
                history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0).history
                results[label].append((history["loss"][-1], history["accuracy"][-1]))
            else:
                results[label].append(torch_epoch(net, opt, xt, yt))
            times[label].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ops_time, whole = tensornet_share(model, x, y, profile_steps)
    torch_ops, torch_whole = torch_share(net, opt, xt, yt, profile_steps)
    return {"case": name, "batch": BATCH, "samples": int(len(x)), "epochs_timed": epochs, "epoch_s": times,
            "median_s": med, "samples_per_s": {k: len(x) / v for k, v in med.items()},
            "ratio_vs_torch": med["tensornet"] / med["torch"], "target": CASES[name],
            "share_gemm_conv": {"tensornet": ops_time / whole, "torch": torch_ops / torch_whole},
            "loss_accuracy": results, "max_prediction_diff_at_start": start_diff,
            "tensornet_step": model.step_path, "torch_threads": torch.get_num_threads()}


# ---------------------------------------------------------------------- running
def format_table(results):
    lines = [f"{'case':<10} {'samples':>7} {'tensornet s':>11} {'torch s':>8} {'ratio':>6} {'target':>6} "
             f"{'share tn':>8} {'share pt':>8}"]
    for r in results:
        lines.append(f"{r['case']:<10} {r['samples']:>7} {r['median_s']['tensornet']:>11.2f} "
                     f"{r['median_s']['torch']:>8.2f} {r['ratio_vs_torch']:>6.2f} {r['target']:>6.2f} "
                     f"{r['share_gemm_conv']['tensornet']:>8.0%} {r['share_gemm_conv']['torch']:>8.0%}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per trainer (interleaved)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up batches per trainer")
    parser.add_argument("--profile-steps", type=int, default=40, help="steps of the share measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,024 samples, no files")
    parser.add_argument("--name", default=None, help="results file stem (default: cpu-<cores>core-<date>-compare-cnn)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.warmup, args.profile_steps, args.no_save = 1024, 2, 2, True
    info = machine_info("cpu")
    command = command_line("compare_cnn.py", argv)
    results = []
    for name in args.cases.split(","):
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; choose from {', '.join(CASES)}")
        results.append(run_cnn_case(name, args.samples, args.epochs, args.warmup, args.profile_steps))
        print(f"  done {name}", file=sys.stderr, flush=True)
    header = (f"# {info['cpu']}, {info['cores']} cores, NumPy {info['numpy']} ({info['blas']}), torch "
              f"{info.get('torch')} ({results[0]['torch_threads']} threads), tensornet accel "
              f"{info['tensornet_accel']}, BLAS {info['tensornet_blas']}, load before {info.get('load_average')}")
    table = format_table(results)
    print(header + "\n" + table)
    if not args.no_save:
        stem = args.name or f"cpu-{info['cores']}core-{datetime.date.today().isoformat()}-compare-cnn"
        write_record(stem, command, {"machine": info, "results": results}, header, table)
    return results


if __name__ == "__main__":
    main()
