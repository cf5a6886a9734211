"""``tensornet info``: one line each for what a bug report needs, each version once, NumPy's BLAS
by its loaded library's name, and the backend with the reason it was chosen."""
from __future__ import annotations

import platform

import numpy
import pytest

from tensornet import cli
from tensornet.backend import fast_path
from tensornet.cli import info as cli_info


def _info(capsys, *arguments, monkeypatch=None):
    assert cli.main(["info", *arguments]) == 0
    return capsys.readouterr().out.splitlines()


def _line(lines, prefix):
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, (prefix, lines)
    return found[0]


def test_one_line_for_each_piece_of_the_installation(capsys, monkeypatch):
    monkeypatch.delenv("TENSORNET_BACKEND", raising=False)
    lines = _info(capsys)
    text = "\n".join(lines)
    assert _line(lines, "python ").startswith(f"python {platform.python_version()} (")
    assert _line(lines, "numpy ") == f"numpy {numpy.__version__}"
    assert text.count(numpy.__version__) == 1  # NumPy's version once
    numba_version, _, _ = fast_path.numba_status()
    assert _line(lines, "numba") == (f"numba {numba_version}" if numba_version else _line(lines, "numba:"))
    for prefix in ("tensornet ", "platform ", "blas: ", "mkl", "cupy", "cuda", "backend: ", "cpu threads: ",
                   "device: "):
        _line(lines, prefix)
    assert "None" not in text


def test_the_blas_line_names_the_library_numpy_loaded_with_its_version(capsys):
    from tensornet.backend.blas_library import numpy_blas_controller

    controller = numpy_blas_controller()
    if controller is None:
        pytest.skip("threadpoolctl cannot read NumPy's BLAS here")
    line = _line(_info(capsys), "blas: ")
    name = {"openblas": "OpenBLAS", "mkl": "MKL"}.get(controller.internal_api, controller.internal_api)
    assert line.startswith(f"blas: {name} {controller.version}")
    if controller.internal_api == "openblas":
        assert "MKL" not in line


def test_mkl_line_says_how_mkl_is_used(capsys, monkeypatch):
    version, note = fast_path.mkl_status()
    line = _line(_info(capsys), "mkl")
    assert line == (f"mkl {version} ({note})" if version else f"mkl: {note}")
    monkeypatch.setattr(fast_path, "_version", lambda name: None)
    _, missing = fast_path.mkl_status()
    assert ("-m pip install mkl" in missing) if fast_path.mkl_platform() else ("Linux x86-64" in missing)


@pytest.mark.parametrize("how", ["env", "option", "auto"])
def test_the_backend_line_says_why(capsys, monkeypatch, how):
    monkeypatch.delenv("TENSORNET_BACKEND", raising=False)
    arguments = []
    if how == "env":
        monkeypatch.setenv("TENSORNET_BACKEND", "numpy")
    elif how == "option":
        arguments = ["--backend", "numpy"]
    line = _line(_info(capsys, *arguments), "backend: ")
    if how == "env":
        assert line == "backend: numpy (chosen by TENSORNET_BACKEND=numpy)"
    elif how == "option":
        assert line == "backend: numpy (chosen by --backend numpy)"
    else:
        chosen, why = cli_info.backend_choice(None)
        assert line == f"backend: {chosen} ({why})" and why.startswith("auto (the default): ")
        assert "CuPy" in why


def test_cupy_and_cuda_lines_without_cupy(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cupy" else real(name, *a))
    cupy_line, cuda_line = cli_info.cuda_lines()
    assert cupy_line.startswith("cupy: not installed") and "tensornet[cuda12]" in cupy_line
    assert cuda_line == "cuda: not used (CuPy is not installed)"


def test_a_bad_backend_setting_is_one_line_and_status_2(capsys, monkeypatch):
    monkeypatch.setenv("TENSORNET_BACKEND", "tpu")
    assert cli.main(["info"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "backend must be one of auto, numpy, cupy; got 'tpu'" in err
