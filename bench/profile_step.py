"""Where a tensornet training step spends its time: forward, fused loss, backward, optimizer,
the matrix products inside the step (the backend's ``matmul`` / ``matmuls`` calls, timed where
the step makes them), against the GEMM floor (the same products alone, one after the other, on
hot caches, as bench/compare.py measures it). Medians of per-step wall-clock times.

    python bench/profile_step.py                 # 784-512-512-10, batch 128
    python bench/profile_step.py 784,64,10 32
    TENSORNET_CPU_KERNELS=numpy python bench/profile_step.py   # the pure-NumPy path
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from compare import GemmFloor, build_tensornet, random_batches
from tensornet.trainer import EpochTotals


def main(argv):
    sizes = tuple(int(s) for s in (argv[0] if argv else "784,512,512,10").split(","))
    batch = int(argv[1]) if len(argv) > 1 else 128
    steps = int(argv[2]) if len(argv) > 2 else 300
    model = build_tensornet(sizes, "numpy")
    ops, trainer = model.ops, model._trainer
    (x, y), = random_batches(sizes, batch, count=1)
    totals = EpochTotals(ops, model.metrics)
    ops.start()  # as fit does: BLAS on the shared pool, MKL's products where installed
    ops.matmul(x, model.layers[0].weights["kernel"])
    floor = GemmFloor(np, sizes, batch, lambda: None, mkl=getattr(ops, "_blas_threads", None) and ops._blas_threads.mkl)
    phases = {"forward": [], "loss": [], "backward": [], "optimizer": [], "step": [], "products": [], "gemm_floor": []}
    clock = time.perf_counter
    in_products, depth = [0.0], [0]
    for name in ("matmul", "matmuls"):  # time the products where the step makes them
        method = getattr(ops, name)

        def timed(*args, _method=method, **kwargs):  # matmuls may call matmul: count the outer call
            depth[0] += 1
            start = clock()
            try:
                return _method(*args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    in_products[0] += clock() - start
        setattr(ops, name, timed)
    for i in range(steps + 20):
        in_products[0] = 0.0
        t0 = clock()
        pred = model.forward(x, training=True)
        t1 = clock()
        grad = trainer._buffer("dy", pred.shape, model.dtype)
        loss = model.loss.fused(ops, model.layers[-1].logits, pred, y, grad)
        totals.add(loss, pred, y)
        t2 = clock()
        model.backward(grad, through_activation=False)
        t3 = clock()
        model.optimizer.apply(model.store)
        t4 = clock()
        floor.step()
        t5 = clock()
        if i >= 20:
            for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, in_products[0], t5 - t4)):
                phases[name].append(dt)
    ops.finish()
    med = {k: statistics.median(v) * 1e3 for k, v in phases.items()}
    print(f"{'-'.join(map(str, sizes))} batch {batch}, kernels: {ops.accelerator}, params {model.count_params():,}")
    for name, value in med.items():
        print(f"  {name:<10} {value:8.3f} ms  {value / med['step'] * 100:5.1f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
