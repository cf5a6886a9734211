"""The data-parallel step on this machine: compute, the all-reduce of the flat gradient buffer, and
the step with the all-reduce in one call against the bucketed all-reduce overlapped with backward.

    python bench/distributed_step.py                                  # K = 1
    mpirun -n 2 --oversubscribe python bench/distributed_step.py      # K = 2 (appends to the record)

Model: MLP 784-512-512-10 (669,706 parameters, 2.68 MB of float32 gradients), SGD with momentum,
global batch 256, synthetic Fashion-MNIST-shaped data. Every figure is a median over rounds that
alternate the two variants (interleaved, in one run). Rank 0 prints the record and writes it to
``--out`` (JSON lines). The model of step time against K in docs/distributed.md reads these.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tensornet as tn  # noqa: E402
import tensornet.distributed as dist  # noqa: E402
from tensornet.distributed.collectives import allreduce_sum_  # noqa: E402
from tensornet.layers import Dense  # noqa: E402
from tensornet.models import Sequential  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402

BATCH, ROWS = 256, 256 * 24


def build():
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                        Dense(10, activation="softmax")], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=SGD(0.01, momentum=0.9))
    return model


def seconds_per_step(model, x, y):
    started = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - started) / (ROWS // BATCH)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bucket-mb", type=float, default=0.5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cpu-2core-2026-12-03-distributed.jsonl"))
    args = parser.parse_args(argv)
    world = dist.init()
    rng = np.random.default_rng(0)
    x = rng.random((ROWS, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, ROWS)]
    model = build()
    _, grads = model.store.flat()
    # compute alone: forward + backward + update on this rank's share of the global batch, no collective
    local = x[:BATCH // world.size], y[:BATCH // world.size]
    step = model.ops.training_step(model, BATCH // world.size)
    compute, reduce_, one_call, overlap = [], [], [], []
    buffer = np.zeros_like(grads)
    for _ in range(args.rounds):
        started = time.perf_counter()
        for _ in range(20):
            step(*local)
        compute.append((time.perf_counter() - started) / 20)
        if world.size > 1:
            started = time.perf_counter()
            for _ in range(20):
                allreduce_sum_(world, buffer)
            reduce_.append((time.perf_counter() - started) / 20)
            dist.init(bucket_bytes=None)
            one_call.append(seconds_per_step(model, x, y))
            dist.init(bucket_bytes=int(args.bucket_mb * 2 ** 20))
            overlap.append(seconds_per_step(model, x, y))
            dist.init(bucket_bytes=None)
        else:
            one_call.append(seconds_per_step(model, x, y))
    if not world.is_root:
        return
    med = statistics.median
    record = {"K": world.size, "global_batch": BATCH, "parameters": model.store.size,
              "gradient_bytes": int(grads.nbytes), "compute_s": med(compute), "step_one_call_s": med(one_call),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s) shared", "python": platform.python_version(),
              "numpy": np.__version__, "tensornet": tn.__version__, "command": " ".join(sys.argv)}
    if world.size > 1:
        import mpi4py
        from mpi4py import MPI

        record.update({"allreduce_s": med(reduce_), "step_overlap_s": med(overlap),
                       "overlap_over_one_call": med(overlap) / med(one_call),
                       "allreduce_share_of_step": med(reduce_) / med(one_call), "bucket_mb": args.bucket_mb,
                       "mpi4py": mpi4py.__version__, "mpi": MPI.Get_library_version().splitlines()[0].strip("\0 ")})
    print(json.dumps(record, indent=1))
    with open(args.out, "a") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
