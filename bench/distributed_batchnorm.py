"""What synchronised BatchNormalization costs in a data-parallel step: the same model trained with
per-rank statistics and with ``BatchNormalization(synchronized=True)`` (three small all-reduces
per layer and step, each waited for in place), alternated round by round in one run.

    mpirun -n 2 --oversubscribe python bench/distributed_batchnorm.py   # K = 2 (appends to the record)
    python bench/distributed_batchnorm.py                               # K = 1: both are the same step

Model: MLP 784-512-BN-512-BN-10 (relu), SGD with momentum, global batch 256, synthetic
Fashion-MNIST-shaped data. Figures are medians over rounds of one epoch of 24 steps per variant.
Rank 0 prints the record and appends it to ``--out`` (JSON lines).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tensornet as tn  # noqa: E402
import tensornet.distributed as dist  # noqa: E402
from tensornet.layers import BatchNormalization, Dense  # noqa: E402
from tensornet.models import Sequential  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402

from distributed_step import BATCH, ROWS, seconds_per_step  # noqa: E402  (the same step timing)


def build(synchronized):
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)),
                        BatchNormalization(synchronized=synchronized), Dense(512, activation="relu"),
                        BatchNormalization(synchronized=synchronized), Dense(10, activation="softmax")], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=SGD(0.01, momentum=0.9))
    return model


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"
                                             / "cpu-2core-2026-12-03-distributed-batchnorm.jsonl"))
    args = parser.parse_args(argv)
    world = dist.init()
    rng = np.random.default_rng(0)
    x = rng.random((ROWS, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, ROWS)]
    per_rank, synchronized = build(False), build(True)
    for model in (per_rank, synchronized):  # first-run costs (compilation, buffers) out of the figures
        model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    times = {"per_rank": [], "synchronized": []}
    for _ in range(args.rounds):
        times["per_rank"].append(seconds_per_step(per_rank, x, y))
        times["synchronized"].append(seconds_per_step(synchronized, x, y))
    if not world.is_root:
        return
    med = statistics.median
    record = {"K": world.size, "global_batch": BATCH, "batchnorm_layers": 2, "features": 512,
              "step_per_rank_statistics_s": med(times["per_rank"]),
              "step_synchronized_s": med(times["synchronized"]),
              "synchronized_over_per_rank": med(times["synchronized"]) / med(times["per_rank"]),
              "rounds": args.rounds, "path": synchronized.step_path,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s) shared", "python": platform.python_version(),
              "numpy": np.__version__, "tensornet": tn.__version__, "command": " ".join(sys.argv)}
    if world.size > 1:
        import mpi4py
        from mpi4py import MPI

        record.update({"mpi4py": mpi4py.__version__, "mpi": MPI.Get_library_version().splitlines()[0].strip("\0 ")})
    print(json.dumps(record, indent=1))
    with open(args.out, "a") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
