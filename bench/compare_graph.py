"""A graph model through ``fit`` against the idiomatic PyTorch loop: same model, same initial
weights, same batches.

The model: two inputs (a: 784 pixels, b: 64 features); b is lifted to 784 by Dense(tanh); one
Dense(256, relu) "shared" is called on both (one weight set, gradient summed); the class head
reads Concatenate([shared(a), shared(a) + shared(lift(b))]) (Dense 10, softmax, categorical
cross-entropy), the regression head the sum (Dense 4, mse, weight 0.5); SGD lr 0.01, momentum
0.9. Before timing, the weights after three identical steps (no shuffling) are compared: the two
libraries must train the same network.

Timing: whole epochs over N examples (batch 128), tensornet's ``fit`` (shuffling on, one input
and one target table per fit, see tensornet.models.packing) against PyTorch's loop over a
DataLoader of a TensorDataset (shuffle=True), alternated epoch by epoch (the order swaps each
round) so that load from other processes hits both alike. Reported: the median epoch time of
each, their ratio, and the quartiles of the per-round ratio.

    python bench/compare_graph.py                 # table + bench/results/<name>.{json,txt}
    python bench/compare_graph.py --quick         # a smoke run (bench/test_compare_graph.py): no files
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import command_line, machine_info, write_record  # noqa: E402
from tensornet.layers import Add, Concatenate, Dense, Input  # noqa: E402
from tensornet.models import Model  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402

LR, MOMENTUM, BATCH, HIDDEN = 0.01, 0.9, 128, 256


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    xa = rng.random((n, 784), dtype=np.float32)
    xb = rng.standard_normal((n, 64)).astype(np.float32)
    labels = rng.integers(0, 10, n)
    return xa, xb, np.eye(10, dtype=np.float32)[labels], rng.standard_normal((n, 4)).astype(np.float32)


def tensornet_model():
    a, b = Input(shape=(784,), name="a"), Input(shape=(64,), name="b")
    shared = Dense(HIDDEN, activation="relu", name="shared")
    ha, hb = shared(a), shared(Dense(784, activation="tanh", name="lift")(b))
    s = Add()([ha, hb])
    model = Model(inputs=[a, b], outputs=[Dense(10, activation="softmax", name="cls")(Concatenate()([ha, s])),
                                          Dense(4, name="reg")(s)], seed=1)
    model.compile(optimizer=SGD(lr=LR, momentum=MOMENTUM), loss=["categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics={"cls": ["accuracy"]})
    return model


def torch_model(model):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.shared, self.lift = torch.nn.Linear(784, HIDDEN), torch.nn.Linear(64, 784)
            self.cls, self.reg = torch.nn.Linear(2 * HIDDEN, 10), torch.nn.Linear(HIDDEN, 4)

        def forward(self, a, b):
            ha = torch.relu(self.shared(a))
            hb = torch.relu(self.shared(torch.tanh(self.lift(b))))
            s = ha + hb
            return self.cls(torch.cat([ha, s], dim=1)), self.reg(s)

    net = Net()
    by_name = {"shared": net.shared, "lift": net.lift, "cls": net.cls, "reg": net.reg}
    with torch.no_grad():
        for layer in model.layers:
            if layer.count_params():
                kernel, bias = layer.get_weights()
                by_name[layer.name].weight.copy_(torch.from_numpy(kernel.T.copy()))
                by_name[layer.name].bias.copy_(torch.from_numpy(bias))
    return net, by_name, torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)


def torch_epoch(net, optimizer, loader):
    import torch

    correct = total = 0.0
    for a, b, y, r in loader:
        logits, reg = net(a, b)
        loss = torch.nn.functional.cross_entropy(logits, y.argmax(dim=1)) + 0.5 * torch.nn.functional.mse_loss(reg, r)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * a.shape[0]
        correct += float((logits.argmax(dim=1) == y.argmax(dim=1)).sum())
    return total, correct


def check_same_training(steps=3):
    """The weights after ``steps`` identical steps agree to float32 rounding."""
    import torch

    xa, xb, y, r = data(steps * BATCH, seed=3)
    model = tensornet_model()
    net, by_name, optimizer = torch_model(model)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*map(torch.from_numpy, (xa, xb, y, r))),
                                         batch_size=BATCH, shuffle=False)
    torch_epoch(net, optimizer, loader)
    model.fit([xa, xb], [y, r], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    worst = 0.0
    for layer in model.layers:
        if layer.count_params():
            kernel, bias = layer.get_weights()
            linear = by_name[layer.name]
            worst = max(worst, float(np.max(np.abs(kernel - linear.weight.detach().numpy().T))),
                        float(np.max(np.abs(bias - linear.bias.detach().numpy()))))
    if worst > 1e-4:
        raise SystemExit(f"the two trainers disagree after {steps} steps: max weight difference {worst:.3e}")
    return worst


def run(n, rounds):
    import torch

    worst = check_same_training()
    xa, xb, y, r = data(n)
    model = tensornet_model()
    net, _, optimizer = torch_model(model)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*map(torch.from_numpy, (xa, xb, y, r))),
                                         batch_size=BATCH, shuffle=True)
    times = {"tensornet": [], "torch": []}

    def tensornet_epoch():
        model.fit([xa, xb], [y, r], batch_size=BATCH, epochs=1, verbose=0)

    trainers = {"tensornet": tensornet_epoch, "torch": lambda: torch_epoch(net, optimizer, loader)}
    for name in trainers:  # one warm-up epoch each
        trainers[name]()
    for round_ in range(rounds):
        for name in (("tensornet", "torch") if round_ % 2 == 0 else ("torch", "tensornet")):
            started = time.perf_counter()
            trainers[name]()
            times[name].append(time.perf_counter() - started)
    ratios = sorted(a / b for a, b in zip(times["tensornet"], times["torch"]))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    return {"examples": n, "batch_size": BATCH, "rounds": rounds, "step_path": model.step_path,
            "tensornet_epoch_s": statistics.median(times["tensornet"]), "torch_epoch_s": statistics.median(times["torch"]),
            "ratio": statistics.median(times["tensornet"]) / statistics.median(times["torch"]),
            "ratio_quartiles": [quartiles[0], quartiles[2]], "max_weight_difference_after_3_steps": worst,
            "torch_threads": torch.get_num_threads()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=12800)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny counts, no result files")
    parser.add_argument("--name", default=f"cpu-{datetime.date.today().isoformat()}-compare-graph")
    args = parser.parse_args(argv)
    n, rounds = (2 * BATCH, 2) if args.quick else (args.examples, args.rounds)
    info = machine_info("cpu")
    result = run(n, rounds)
    text = (f"graph model (2 inputs, shared Dense {HIDDEN}, Add, Concatenate, 2 heads), {n} examples, "
            f"batch {BATCH}, {rounds} rounds\n"
            f"tensornet fit epoch  {result['tensornet_epoch_s']:.3f} s   ({result['step_path']})\n"
            f"PyTorch loop epoch   {result['torch_epoch_s']:.3f} s\n"
            f"ratio tensornet / PyTorch {result['ratio']:.2f} (per-round quartiles {result['ratio_quartiles'][0]:.2f}"
            f"-{result['ratio_quartiles'][1]:.2f}); weights after 3 steps agree to "
            f"{result['max_weight_difference_after_3_steps']:.1e}")
    print(text)
    if not args.quick:
        write_record(args.name, command_line("compare_graph.py", argv), {"machine": info, "result": result},
                     json.dumps(info), text)
    return result


if __name__ == "__main__":
    main()
