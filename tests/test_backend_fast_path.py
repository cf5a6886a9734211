"""tensornet.backend.fast_path: the line fit prints when a missing package or a setting keeps the
CPU step off its fastest path, and the versions ``tensornet info`` reports."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from tensornet.backend import NumpyBackend, fast_path
from tensornet.layers import Dense
from tensornet.models import Sequential


def test_numpy_kernels_by_setting_name_the_setting_to_unset():
    note = fast_path.cpu_path_note("numpy", numba_in_use=False)
    assert "TENSORNET_CPU_KERNELS=numpy" in note and "unset TENSORNET_CPU_KERNELS" in note
    assert fast_path.kernel_setting("numpy") == "TENSORNET_CPU_KERNELS=numpy"


def test_missing_numba_names_the_exact_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)
    version, problem, command = fast_path.numba_status()
    assert version is None and problem == "Numba is not installed"
    assert command == f"{sys.executable} -m pip install numba"
    assert fast_path.cpu_path_note("auto", numba_in_use=False) == (
        f"fit trains on NumPy alone, the layered step without compiled kernels: Numba is not installed; "
        f"{command} gets the compiled CPU kernels")
    assert fast_path.kernel_setting("auto") == "Numba is not installed"


def test_missing_mkl_on_linux_x86_64_names_its_install_command(monkeypatch):
    monkeypatch.delenv("TENSORNET_BLAS", raising=False)
    monkeypatch.setattr(fast_path, "mkl_platform", lambda: True)
    monkeypatch.setattr(fast_path, "_version", lambda name: None)
    note = fast_path.cpu_path_note("auto", numba_in_use=True)
    assert note.startswith("fit trains with Numba's kernels on NumPy's OpenBLAS")
    assert f"{sys.executable} -m pip install mkl" in note
    monkeypatch.setenv("TENSORNET_BLAS", "numpy")  # a choice: nothing to suggest
    assert fast_path.cpu_path_note("auto", numba_in_use=True) is None


def test_no_note_where_the_fast_path_runs_or_cannot_exist(monkeypatch):
    monkeypatch.setattr(fast_path, "mkl_platform", lambda: False)
    assert fast_path.cpu_path_note("auto", numba_in_use=True) is None
    _, note = fast_path.mkl_status() if fast_path._version("mkl") is None else (None, "Linux x86-64")
    assert "Linux x86-64" in note


def test_fit_prints_the_note_once(capsys):
    pytest.importorskip("numba")
    from tensornet.training import progress

    backend = NumpyBackend()
    backend._set_kernels("numpy")
    progress._printed_notes.clear()
    model = Sequential([Dense(3, input_shape=(4,))], seed=0)
    model.compile(optimizer="sgd", loss="mse", backend=backend)
    x, y = np.ones((8, 4), np.float32), np.ones((8, 3), np.float32)
    model.fit(x, y, verbose=2)
    model.fit(x, y, verbose=2)
    out = capsys.readouterr().out
    assert out.count("tensornet: fit trains on NumPy alone because TENSORNET_CPU_KERNELS=numpy") == 1
    model.fit(x, y, verbose=0)
    assert "fit trains" not in capsys.readouterr().out
