"""Benchmark suites for the hot paths (pytest-benchmark), one parametrisation per backend.

    python -m pytest bench/                          # timed (pytest-benchmark's table)
    python -m pytest bench/ --benchmark-disable -q   # quick mode (CI): every benchmark runs once, untimed

Backends: ``numpy`` (with the Numba kernels when the ``fast`` extra is installed),
``numpy-plain`` (the pure-NumPy fallback, TENSORNET_CPU_KERNELS=numpy) and ``cupy`` (marked
``gpu``; skipped without a GPU). Every benchmark checks its result against a reference before
timing it, and records a rate (GFLOP/s, GB/s or samples/s) in ``extra_info``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tensornet.backend import NumpyBackend, cupy_status  # noqa: E402

BACKENDS = ["numpy", "numpy-plain", pytest.param("cupy", marks=pytest.mark.gpu)]


def make_backend(name):
    if name == "cupy":
        usable, reason = cupy_status()
        if not usable:
            pytest.skip(reason)
        from tensornet.backend.cupy_backend import CupyBackend

        return CupyBackend()
    if name == "numpy":
        return NumpyBackend()
    saved = os.environ.get("TENSORNET_CPU_KERNELS")  # numpy-plain: the kernels' switch, read at construction
    os.environ["TENSORNET_CPU_KERNELS"] = "numpy"
    try:
        backend = NumpyBackend()
    finally:
        if saved is None:
            del os.environ["TENSORNET_CPU_KERNELS"]
        else:
            os.environ["TENSORNET_CPU_KERNELS"] = saved
    assert backend.accelerator == "numpy"
    return backend


@pytest.fixture(params=BACKENDS)
def ops(request):
    """A fresh backend of each kind, set up as inside ``fit`` (``start()`` ... ``finish()``: BLAS'
    thread counts, the shared pool and MKL, as a training step has them)."""
    backend = make_backend(request.param)
    backend.start()
    yield backend
    backend.finish()


@pytest.fixture
def quick(request):
    """True under --benchmark-disable (CI's quick mode): use smaller workloads where they are long."""
    return bool(request.config.getoption("benchmark_disable", False))


@pytest.fixture
def run(benchmark, ops):
    """``run(fn, *args)``: benchmark ``fn`` with a device synchronise after each call."""
    sync = ops.synchronize

    def call(fn, *args, rate=None, **kwargs):
        """``rate=(amount, unit)``, e.g. ``(flops / 1e9, "GFLOP/s")``: recorded per median second."""
        def timed():
            result = fn(*args, **kwargs)
            sync()
            return result

        for _ in range(2):  # warm up (JIT compilation, first-touch of buffers)
            timed()
        result = benchmark(timed)
        stats = getattr(benchmark, "stats", None)
        if rate is not None and stats is not None:
            benchmark.extra_info[rate[1]] = round(rate[0] / stats.stats.median, 2)
        return result

    return call


def host(ops, x):
    return np.asarray(ops.to_numpy(x), dtype=np.float64)


def rand(ops, rng, shape, dtype="float32", scale=1.0):
    return ops.asarray((rng.standard_normal(shape) * scale).astype(dtype))
