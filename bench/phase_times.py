"""Per-phase time of tensornet's training step (forward, loss, backward, optimizer) after many
steps on 8 random-label batches, and the state of the SGD velocity (how many entries are
subnormal): the measurement behind NOTES.md change 6.

    python bench/phase_times.py [hidden] [batch]        (default 512 128: a 784-512-10 MLP)
"""
import sys
import time

import numpy as np

from tensornet.layers import Dense
from tensornet.models import Sequential
from tensornet.optimizers import SGD
from tensornet.trainer import EpochTotals


def main(hidden=512, batch=128, warmup=2000, steps=2000):
    model = Sequential(seed=0)
    model.add(Dense(hidden, activation="relu", input_shape=(784,)))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"],
                  optimizer=SGD(lr=0.01, momentum=0.9, nesterov=True), backend="numpy")
    rng = np.random.default_rng(0)
    batches = [(rng.random((batch, 784), dtype=np.float32),  # pixel-like inputs in [0, 1)
                np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]) for _ in range(8)]
    trainer, ops = model._trainer, model.ops
    totals = EpochTotals(ops, model.metrics)
    for i in range(warmup):
        trainer.train_step(*batches[i % 8], totals)
    phases = dict.fromkeys(("forward", "loss", "backward", "optimizer"), 0.0)
    for i in range(steps):
        x, y = batches[i % 8]
        t0 = time.perf_counter()
        pred = model.forward(x, training=True)
        t1 = time.perf_counter()
        grad = trainer._buffer("dy", pred.shape, model.dtype)
        totals.add(model.loss.fused(ops, model.layers[-1].logits, pred, y, grad), pred, y)
        t2 = time.perf_counter()
        model.backward(grad, through_activation=False)
        t3 = time.perf_counter()
        model.optimizer.apply(model.store)
        t4 = time.perf_counter()
        for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            phases[name] += dt
    print(f"784-{hidden}-10, batch {batch}: " + ", ".join(f"{k} {v / steps * 1e6:.0f} us" for k, v in phases.items()))
    velocity = model.optimizer.state[model.dtype]["velocity"]
    tiny = np.finfo(velocity.dtype).tiny
    subnormal = int(np.count_nonzero((velocity != 0) & (np.abs(velocity) < tiny)))
    print(f"velocity: {subnormal} of {velocity.size} entries subnormal, "
          f"{int(np.count_nonzero(velocity == 0))} zero")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
