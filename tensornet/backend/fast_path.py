"""Which CPU path the NumPy backend can take here, and the command that gets a faster one.

The CPU step is fastest with Numba's compiled kernels (a core dependency wherever Numba has
wheels: Linux, macOS and Windows on x86-64 and arm64) and, on Linux x86-64, MKL's GEMM on the
same threads (the ``mkl`` wheel, a core dependency there), which the compiled whole step needs.
:func:`numba_status` and :func:`mkl_status` say what is installed; :func:`cpu_path_note` is
the one line ``fit`` prints when a missing package or a setting keeps it off the faster path.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import sys

from .mkl_blas import ENV as BLAS_ENV
from .mkl_blas import find_mkl_rt

#: ``TENSORNET_CPU_KERNELS`` (also read by the NumPy backend).
KERNELS_ENV = "TENSORNET_CPU_KERNELS"


def _pip(*packages) -> str:
    """The exact command that installs ``packages`` into this interpreter's environment."""
    return f"{sys.executable} -m pip install {' '.join(packages)}"


def _version(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def mkl_platform() -> bool:
    """Whether tensornet can call MKL here: Linux on x86-64, where the ``mkl`` wheel ships ``libmkl_rt.so``."""
    return sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")


def numba_status():
    """``(version, problem, command)``: Numba's version when it imports (problem and command
    None), else None, why not, and the command that installs or repairs it."""
    if importlib.util.find_spec("numba") is None:
        return None, "Numba is not installed", _pip("numba")
    try:
        import numba
    except Exception as exc:  # ImportError, or a Numba built for another NumPy raising anything
        return None, (f"Numba {_version('numba') or ''} is installed but does not import "
                      f"({exc.__class__.__name__}: {exc})"), _pip("-U", "numba", "llvmlite")
    return numba.__version__, None, None


def mkl_status():
    """``(version, note)``: the ``mkl`` package's version and how the NumPy backend uses it, or
    None and why it is not used (with the command that installs it where it would be)."""
    version = _version("mkl")
    if version is None:
        if not mkl_platform():
            return None, (f"not used on {sys.platform} {platform.machine()} (MKL's GEMM is called only on "
                          f"Linux x86-64); products go to NumPy's BLAS")
        return None, f"not installed ({_pip('mkl')} gets MKL's GEMM and the compiled whole step)"
    if os.environ.get(BLAS_ENV, "auto").lower() == "numpy":
        return version, f"installed, not used: {BLAS_ENV}=numpy keeps products on NumPy's BLAS"
    if find_mkl_rt() is None:
        return version, "installed without libmkl_rt: products go to NumPy's BLAS"
    return version, "libmkl_rt: the NumPy backend's products inside fit / evaluate / predict"


def cpu_path_note(kernel_mode, numba_in_use) -> str | None:
    """One line saying which path ``fit`` takes when a missing package or a setting keeps it
    off the fastest, with the command that gets the faster one; None when nothing would.

    ``kernel_mode`` is ``TENSORNET_CPU_KERNELS`` (``auto``, ``numba``, ``numpy``) and
    ``numba_in_use`` whether Numba's kernels loaded."""
    if kernel_mode == "numpy":
        return (f"fit trains on NumPy alone because {KERNELS_ENV}=numpy; run without it "
                f"(unset {KERNELS_ENV}) for Numba's compiled kernels")
    if not numba_in_use:
        _, problem, command = numba_status()
        return (f"fit trains on NumPy alone, the layered step without compiled kernels: {problem}; "
                f"{command} gets the compiled CPU kernels")
    if os.environ.get(BLAS_ENV, "auto").lower() == "numpy" or not mkl_platform():
        return None  # a choice, or a platform without MKL: Numba's kernels on NumPy's BLAS is the fast path here
    if _version("mkl") is None:
        return (f"fit trains with Numba's kernels on NumPy's OpenBLAS, without the compiled whole step: "
                f"MKL is not installed ({_pip('mkl')} gets it)")
    return None


def kernel_setting(kernel_mode) -> str:
    """Why Numba's kernels are not in use, for ``model.step_path``."""
    if kernel_mode == "numpy":
        return f"{KERNELS_ENV}=numpy"
    _, problem, _ = numba_status()
    return problem or f"{KERNELS_ENV}={kernel_mode}"
