"""Where a tensornet training step spends its time, measured through ``fit``.

Three steppers, interleaved block by block in one process (bench/harness.py), every step timed
inside ``fit`` by a callback:

- the step ``fit`` takes with ``compile(jit_compile=True)`` (the compiled whole-step kernel),
  where the model and backend allow it (else the reason is printed);
- the layered step (``jit_compile=False``), on its own backend instance whose public operations
  are timed where the step calls them: the matrix products (``matmul``, ``matmuls``), the
  optimizer's update (every ``*_update`` method), and the rest (bias + activation, loss,
  gradients, Python);
- the GEMM floor: the step's products alone, one after the other, through the same BLAS, as
  bench/compare.py measures it. ``share`` = floor / step.

Medians of per-step wall-clock times; the layered step's parts are medians per part, so they
need not add up to the step exactly.

    python bench/profile_step.py                     # 784-512-512-10, batch 128, 300 steps each
    python bench/profile_step.py 784,64,10 32 200    # sizes, batch, timed steps per stepper
    TENSORNET_CPU_KERNELS=numpy python bench/profile_step.py   # the pure-NumPy path
"""
from __future__ import annotations

import datetime
import statistics
import sys
import time

import numpy as np

from compare import TensornetStepper, build_tensornet, random_batches
from harness import GemmFloor, StepTimer, machine_info, time_interleaved
from tensornet.backend import NumpyBackend

STEPS_PER_BLOCK = 20


class PartTimer(StepTimer):
    """A :class:`StepTimer` that also keeps, per step, the time spent inside the backend
    operations wrapped by :func:`instrument` (``parts``: {part: [seconds per step]})."""

    def __init__(self, sync, parts):
        super().__init__(sync)
        self.parts, self.current = {name: [] for name in parts}, dict.fromkeys(parts, 0.0)

    def on_train_batch_begin(self, batch, logs=None):
        for name in self.current:
            self.current[name] = 0.0
        super().on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        for name, seconds in self.current.items():
            self.parts[name].append(seconds)


def instrument(ops, timer_ref):
    """Wrap ``ops``' products and optimizer updates (on this instance only) so that each call's
    wall-clock time is added to ``timer_ref[0].current[part]`` while a :class:`PartTimer` runs.
    An outer call that makes inner ones (``matmuls`` calling ``matmul``) is counted once."""
    parts = {"products": ["matmul", "matmuls"],
             "optimizer": sorted(n for n in dir(ops) if n.endswith("_update") and not n.startswith("_")
                           and callable(getattr(ops, n)))}
    depth = [0]
    for part, names in parts.items():
        for name in names:
            method = getattr(ops, name)

            def timed(*args, _method=method, _part=part, **kwargs):
                depth[0] += 1
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    depth[0] -= 1
                    if not depth[0] and timer_ref[0] is not None:
                        timer_ref[0].current[_part] += time.perf_counter() - start
            setattr(ops, name, timed)
    return list(parts)


class LayeredStepper(TensornetStepper):
    """The layered step through ``fit``, its parts timed (see :func:`instrument`)."""

    def __init__(self, model, x, y, batch):
        super().__init__(model, x, y, batch)
        self.timer_ref = [None]
        self.part_names = instrument(model.ops, self.timer_ref)
        self.parts = {name: [] for name in self.part_names}

    def run(self, count):
        timer = self.timer_ref[0] = PartTimer(self.sync, self.part_names)
        self._fit(count, timer)
        self.timer_ref[0] = None
        for name, laps in timer.parts.items():
            self.parts[name] += laps[1:]
        return timer.laps[1:]


def tiled(sizes, batch, blocks):
    """(x, y): 8 random batches tiled often enough for blocks of ``blocks`` steps from any of them."""
    batches = random_batches(sizes, batch, count=8)
    tiles = -(-(8 + blocks + 1) // 8)
    return (np.concatenate([b[0] for b in batches] * tiles), np.concatenate([b[1] for b in batches] * tiles))


def main(argv):
    sizes = tuple(int(s) for s in (argv[0] if argv else "784,512,512,10").split(","))
    batch = int(argv[1]) if len(argv) > 1 else 128
    steps = int(argv[2]) if len(argv) > 2 else 300
    x, y = tiled(sizes, batch, STEPS_PER_BLOCK)
    layered = build_tensornet(sizes, NumpyBackend(), jit_compile=False)
    steppers = {"layered": LayeredStepper(layered, x, y, batch)}
    compiled = build_tensornet(sizes, "numpy", jit_compile=True)
    try:
        compiled.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)
        steppers["compiled"] = TensornetStepper(compiled, x, y, batch)
        why_not = None
    except ValueError as exc:  # jit_compile=True where fit cannot compile the step: it says why
        why_not = str(exc)
    steppers["gemm_floor"] = GemmFloor(compiled.ops, sizes, batch)
    rounds = max(1, -(-steps // STEPS_PER_BLOCK))
    times, _ = time_interleaved(steppers, rounds, STEPS_PER_BLOCK, warmup=STEPS_PER_BLOCK)
    med = {name: statistics.median(laps) * 1e3 for name, laps in times.items()}
    parts = {name: statistics.median(laps) * 1e3 for name, laps in steppers["layered"].parts.items()}
    floor = med["gemm_floor"]
    info = machine_info("cpu")
    print(f"# {info['cpu']}, {info['cores']} cores, {datetime.date.today()}, Python {info['python']}, "
          f"NumPy {info['numpy']}, Numba {info['numba']}, tensornet BLAS: {info['tensornet_blas']}")
    print(f"{'-'.join(map(str, sizes))} batch {batch}, kernels: {layered.ops.accelerator}, "
          f"params {layered.count_params():,}, {len(times['layered'])} steps each")
    if why_not is None:
        print(f"  compiled step   {med['compiled']:8.3f} ms  share {floor / med['compiled'] * 100:5.1f}%")
    else:
        print(f"  compiled step   not taken: {why_not}")
    print(f"  layered step    {med['layered']:8.3f} ms  share {floor / med['layered'] * 100:5.1f}%")
    for name, value in parts.items():
        print(f"    {name:<12}  {value:8.3f} ms  {value / med['layered'] * 100:5.1f}% of the layered step")
    rest = med["layered"] - sum(parts.values())
    print(f"    {'the rest':<12}  {rest:8.3f} ms  {rest / med['layered'] * 100:5.1f}% (element-wise kernels, loss, Python)")
    print(f"  gemm floor      {floor:8.3f} ms")
    return med, parts


if __name__ == "__main__":
    main(sys.argv[1:])
