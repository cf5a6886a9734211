"""A Dense layer's two backward products side by side (one pool thread each) against one after
the other (every thread each), inside tensornet's training step: blocks of steps alternated in
one process, as fit runs them (the measurement behind bench/NOTES.md change 12).

    python bench/ab_side_by_side.py                          # 784-512-512-10, batch 128
    python bench/ab_side_by_side.py 784,2048,2048,10 256 6   # sizes, batch, blocks
"""
from __future__ import annotations

import statistics
import sys
import time


from compare import build_tensornet, random_batches
from tensornet.backend import numpy_backend
from tensornet.backend.base import Backend
from tensornet.trainer import EpochTotals


def main(argv):
    sizes = tuple(int(s) for s in (argv[0] if argv else "784,512,512,10").split(","))
    batch = int(argv[1]) if len(argv) > 1 else 128
    blocks = int(argv[2]) if len(argv) > 2 else 20
    per_block = 20
    model = build_tensornet(sizes, "numpy")
    ops, trainer = model.ops, model._trainer
    batches = random_batches(sizes, batch)
    totals = EpochTotals(ops, model.metrics)
    side_by_side = numpy_backend.NumpyBackend.matmuls
    variants = {"side by side": lambda products: side_by_side(ops, products),
                "one after the other": lambda products: Backend.matmuls(ops, products)}
    times = {name: [] for name in variants}
    saved = numpy_backend.MKL_SIDE_BY_SIDE_MACS
    numpy_backend.MKL_SIDE_BY_SIDE_MACS = 0  # every threaded pair side by side, MKL or not
    ops.start()
    try:
        step = 0
        for block in range(blocks + 1):
            for name, matmuls in variants.items():
                ops.matmuls = matmuls
                for i in range(per_block):
                    start = time.perf_counter()
                    trainer.train_step(*batches[step % 8], totals)
                    if block:  # the first block of each is warm-up
                        times[name].append(time.perf_counter() - start)
                    step += 1
        blas = "MKL" if ops._blas_threads.mkl is not None else "NumPy's BLAS"
    finally:
        ops.finish()
        del ops.matmuls
        numpy_backend.MKL_SIDE_BY_SIDE_MACS = saved
    print(f"{'-'.join(map(str, sizes))} batch {batch}, products through {blas}, {blocks} blocks of {per_block} "
          "steps each, alternated")
    for name, values in times.items():
        print(f"  {name:<20} median {statistics.median(values) * 1e3:8.3f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
