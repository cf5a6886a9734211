"""Repository-wide pytest configuration.

- The ``gpu`` marker: tests that need CuPy and a CUDA device. Where
  ``tensornet.backend.cupy_status()`` says CuPy, the driver or a device is missing, every
  ``gpu``-marked test is skipped with that reason (so a CPU-only machine runs the rest).
"""
from __future__ import annotations

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU with CuPy (skipped otherwise)")


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    from tensornet.backend import cupy_status

    usable, reason = cupy_status()
    if usable:
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {reason}")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture
def stub_cupy_backend_module(monkeypatch):
    """``tensornet/backend/cupy_backend.py`` loaded by file with a stand-in ``cupy`` module.

    Needs neither CuPy nor a GPU: the module only touches ``cupy`` inside methods, so its
    class can be inspected (signatures) or subclassed with ``xp = numpy`` and a host launcher
    (tests/test_kernels_compile.py). The real ``tensornet.backend.cupy_backend`` is untouched.
    """
    import importlib.util
    import sys
    import types
    from pathlib import Path

    import numpy

    import tensornet.backend

    stub = types.ModuleType("cupy")
    stub.ndarray = numpy.ndarray
    stub.__version__ = "0+stub"
    monkeypatch.setitem(sys.modules, "cupy", stub)
    monkeypatch.setitem(sys.modules, "cupyx", types.ModuleType("cupyx"))
    path = Path(tensornet.backend.__file__).resolve().parent / "cupy_backend.py"
    spec = importlib.util.spec_from_file_location("tensornet.backend._cupy_backend_stubbed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------- counts in CI's output
_COUNT_LINES = []


@pytest.fixture
def report_counts():
    """``report_counts(line)`` adds ``line`` to the "counts" section pytest prints at the end of
    the run (quiet mode included): how many kills, fuzzed files, ... a test went through."""
    return _COUNT_LINES.append


def pytest_terminal_summary(terminalreporter):
    if _COUNT_LINES:
        terminalreporter.section("counts")
        for line in _COUNT_LINES:
            terminalreporter.write_line(line)
