"""The timing harness of bench/compare.py and bench/profile_step.py: the machine's description,
steppers timed block by block, a timer for ``fit``'s steps (a public callback), the GEMM floor,
interleaved rounds, and the results table."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import tensornet as tn
from tensornet.callbacks import Callback


def machine_info(device):
    """What the results depend on: Python, platform, CPU, core count, NumPy and its BLAS,
    PyTorch (threads, BLAS), Numba / numexpr / CuPy versions, and tensornet's backend as it
    describes itself (``device_info()``), with the load average before the run."""
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": _cpu_model(), "cores": os.cpu_count(), "numpy": np.__version__,
            "tensornet": getattr(tn, "__version__", "?")}
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy
        info["blas"] = "unknown"
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_blas"] = "MKL" if torch.backends.mkl.is_available() else "other"
    except ImportError:
        info["torch"] = None
    for name in ("numba", "numexpr", "cupy"):
        try:
            info[name] = __import__(name).__version__
        except Exception:
            info[name] = None
    from tensornet.backend import get_backend

    ops = get_backend("cupy" if device == "cuda" else "numpy")
    info["tensornet_backend"] = ops.name
    info["tensornet_accel"] = getattr(ops, "accelerator", "numpy")
    info["tensornet_blas"] = tensornet_blas(ops, info["blas"])
    if os.environ.get("BENCH_REFERENCE_BACKEND"):
        info["tensornet_accel"] = "reference Backend (BENCH_REFERENCE_BACKEND=1)"
    info["device"] = ops.device_info()
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def tensornet_blas(ops, numpy_blas):
    """The BLAS a training step's products go to, as the backend describes it: cuBLAS on the GPU;
    on the CPU the backend's ``cpu_threads`` line (MKL or NumPy's BLAS, and which threads run
    it inside fit), with the ``mkl`` wheel's version where it is installed."""
    if ops.name == "cupy":
        return "cuBLAS"
    threads = ops.device_info().get("cpu_threads")
    if threads is None:
        return numpy_blas
    if "MKL" not in threads:
        return f"{threads} (NumPy's {numpy_blas})"
    try:
        return f"{threads} (mkl {importlib.metadata.version('mkl')})"
    except importlib.metadata.PackageNotFoundError:
        return threads


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------- steppers
class Stepper:
    """A trainer timed step by step; a subclass defines ``step()``, one training step.
    ``run(count)`` makes one untimed step, then ``count`` timed ones, and returns their
    wall-clock times (seconds)."""

    def run(self, count):
        clock = time.perf_counter
        self.step()
        laps = []
        for _ in range(count):
            t0 = clock()
            self.step()
            laps.append(clock() - t0)
        return laps


class StepTimer(Callback):
    """Each training step's wall-clock time inside ``fit``: from ``on_train_batch_begin`` to
    ``on_train_batch_end``, after ``sync()`` (the device's queue drained on a GPU)."""

    def __init__(self, sync):
        super().__init__()
        self.sync, self.laps, self.started = sync, [], 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.sync()
        self.laps.append(time.perf_counter() - self.started)


class GemmFloor(Stepper):
    """Only the matrix products of one training step, one after the other, through the
    backend's own ``matmul`` (MKL or NumPy's BLAS on the CPU, cuBLAS on the GPU) into
    preallocated outputs, between the backend's ``start()`` and ``finish()`` as inside ``fit``
    (the same BLAS, threads and thread counts as the step's products)."""

    def __init__(self, ops, sizes, batch):
        rng = np.random.default_rng(1)
        f = lambda *shape: ops.asarray(rng.standard_normal(shape, dtype=np.float32))  # noqa: E731
        self.ops = ops
        self.products = []  # (a, b, out, trans_a, trans_b)
        for i in range(len(sizes) - 1):
            x, w, dz = f(batch, sizes[i]), f(sizes[i], sizes[i + 1]), f(batch, sizes[i + 1])
            self.products.append((x, w, ops.empty((batch, sizes[i + 1]), np.float32), False, False))   # z = x W
            self.products.append((x, dz, ops.empty((sizes[i], sizes[i + 1]), np.float32), True, False))  # x^T dz
            if i > 0:
                self.products.append((dz, w, ops.empty((batch, sizes[i]), np.float32), False, True))  # dz W^T

    def step(self):
        matmul = self.ops.matmul
        for a, b, out, trans_a, trans_b in self.products:
            matmul(a, b, out=out, trans_a=trans_a, trans_b=trans_b)
        self.ops.synchronize()

    def run(self, count):
        self.ops.start()
        try:
            return super().run(count)
        finally:
            self.ops.finish()


def gemm_flops(sizes, batch):
    """Floating-point operations of one step's products: 2 B k n for each product of a k -> n
    layer at batch B, three per layer (x W, x^T dz, dz W^T), two for the first (no dx)."""
    total = 0
    for i in range(len(sizes) - 1):
        per = 2 * batch * sizes[i] * sizes[i + 1]
        total += per * (3 if i > 0 else 2)
    return total


def time_interleaved(steppers, rounds, steps, warmup, block_seconds=None):
    """({name: [per-step seconds]}, steps per block): rounds in which every stepper runs a block
    of steps in turn (``stepper.run(count)``), the order rotating each round.

    With ``block_seconds``, a block is cut to about that long (at least one step, at most
    ``steps``) and the rounds are raised so that each stepper still takes ``rounds * steps``
    timed steps. A shared host can switch between a quiet and a loaded state within a second or
    two: with short blocks each state is shared out among the trainers alike. Cases with short
    steps keep ``steps`` per block, so that each block still runs on caches its own steps left
    warm."""
    warm = {name: statistics.median(stepper.run(warmup)) if warmup else 0.0
            for name, stepper in steppers.items()}
    per_block = steps
    slowest = max(warm.values(), default=0.0)
    if block_seconds and slowest > 0:
        per_block = max(1, min(steps, round(block_seconds / slowest)))
        rounds = -(-rounds * steps // per_block)
    times = {name: [] for name in steppers}
    names = list(steppers)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            # let the previous block's idle threads (BLAS and OpenMP workers spin a little after
            # their last job) go to sleep: each trainer is timed as it runs on its own
            time.sleep(0.15)
            times[name] += steppers[name].run(per_block)
    return times, per_block


def paired_ratios(times, per_block, name, reference):
    """Quartiles (25, 50, 75 %) over the rounds of (``name``'s median step in the round) /
    (``reference``'s): how far the ratio moves with the host's state within one run."""
    a, b = times[name], times[reference]
    ratios = sorted(statistics.median(a[i:i + per_block]) / statistics.median(b[i:i + per_block])
                    for i in range(0, min(len(a), len(b)), per_block))
    if len(ratios) < 2:
        return [ratios[0]] * 3 if ratios else []
    return statistics.quantiles(ratios, n=4, method="inclusive")


# ---------------------------------------------------------------------- report
def format_table(results, targets):
    lines = []
    head = (f"{'case':<10} {'batch':>5} {'tensornet':>10} {'torch':>9} {'t.fused':>9} {'ratio':>6} "
            f"{'r.fused':>7} {'gemm':>8} {'share':>6} {'tn samples/s':>13} {'target':>10}  met")
    lines.append(head)
    lines.append("-" * len(head))
    for res in results:
        med = res["median_s"]
        target = targets.get(res["case"], (None, None))
        ok = target[0] is None or res["ratio_vs_torch"] <= target[0]
        tgt = f"<={target[0]:.2f}" if target[0] else ""
        if "gemm_floor" in med:
            if target[1] is not None:
                ok = ok and res["gemm_share"] >= target[1]
                tgt += f",{int(target[1] * 100)}%"
            lines.append(
                f"{res['case']:<10} {res['batch']:>5} {med['tensornet'] * 1e3:>8.3f}ms {med['torch'] * 1e3:>7.3f}ms "
                f"{med['torch_fused'] * 1e3:>7.3f}ms {res['ratio_vs_torch']:>6.2f} {res['ratio_vs_torch_fused']:>7.2f} "
                f"{med['gemm_floor'] * 1e3:>6.3f}ms {res['gemm_share'] * 100:>5.0f}% "
                f"{res['samples_per_s']['tensornet']:>13,.0f} {tgt:>10}  {'yes' if ok else 'NO'}")
        else:
            lines.append(
                f"{res['case']:<10} {res['batch']:>5} {med['tensornet']:>9.3f}s {med['torch']:>8.3f}s "
                f"{'':>9} {res['ratio_vs_torch']:>6.2f} {'':>7} {'':>8} {'':>6} "
                f"{res['samples_per_s']['tensornet']:>13,.0f} {tgt:>10}  {'yes' if ok else 'NO'}")
        res["target_met"] = ok
    return "\n".join(lines)


#: Where the benchmark scripts write their records.
RESULTS = Path(__file__).resolve().parent / "results"


def command_line(script, argv=None):
    """How a record names its run: ``python bench/<script> <arguments>`` (``argv``, else the
    process's own), as typed at the repository root."""
    return " ".join(["python", f"bench/{script}", *(argv if argv is not None else sys.argv[1:])])


def write_record(stem, command, payload, *blocks):
    """``results/<stem>.json``: {"command": ``command``, **``payload``}; ``results/<stem>.txt``:
    ``$ command``, then each of ``blocks`` on its own line(s). Prints where it wrote them."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"command": command, **payload}, indent=2, default=str) + "\n")
    (RESULTS / f"{stem}.txt").write_text("\n".join([f"$ {command}", *blocks]) + "\n")
    print(f"wrote {RESULTS / stem}.json and .txt")
