"""NumPy's BLAS as loaded in this process: its threadpoolctl controller, its CBLAS symbols, and
whether its jobs can run on Numba's threads here (which decides Numba's threading layer).

The lowest layer of the CPU backend's threading: :mod:`._numba_threads`, :mod:`._numba_blas`,
:mod:`.shared_pool` and :mod:`.blas_threads` import from here, and this module imports nothing
of tensornet, so every import between them points one way.

Sharing one pool needs all of:

- NumPy's BLAS is an OpenBLAS (0.3.28 or later, pthreads build) exporting
  ``openblas_set_threads_callback_function``, and the machine has two cores or more;
- ``OMP_THREAD_LIMIT`` and ``OMP_DYNAMIC`` are unset (either can shrink an OpenMP team below
  the number of jobs of one product, whose jobs busy-wait on each other);
- ``TENSORNET_SHARED_POOL`` is not ``0``;
- the process is not a forked child of one that used GNU OpenMP (which aborts a forked child's
  parallel region).
"""
from __future__ import annotations

import ctypes
import os
import sys

#: ``TENSORNET_SHARED_POOL``: ``auto`` (default) or ``0`` (OpenBLAS keeps its own threads).
ENV = "TENSORNET_SHARED_POOL"

#: CBLAS' row-major order, and its "no transpose" / "transpose" flags.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

#: OpenBLAS' symbol affixes (NumPy's wheels: ``scipy_`` + name + ``64_``).
_AFFIXES = tuple((prefix, suffix) for prefix in ("", "scipy_") for suffix in ("", "64_", "_64"))

_forked_child = False


def numpy_blas_controller():
    """threadpoolctl's controller of the BLAS NumPy's wheel ships (under ``numpy.libs``), or
    None (no threadpoolctl, or a NumPy linked to another BLAS: then nothing is changed). Other
    BLAS libraries in the process (PyTorch's, say) are left alone."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    import numpy

    numpy_libs = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    for controller in ThreadpoolController().select(user_api="blas").lib_controllers:
        path = os.path.abspath(controller.filepath)
        if path.startswith(os.path.join(numpy_libs, "numpy")):  # numpy/ or numpy.libs/
            return controller
    return None


def symbol(controller, name):
    """(ctypes function, suffix) of ``name`` in the library, under any of OpenBLAS' symbol
    affixes, or (None, None)."""
    for prefix, suffix in _AFFIXES:
        function = getattr(controller.dynlib, f"{prefix}{name}{suffix}", None)
        if function is not None:
            return function, suffix
    return None, None


def callback_setter(controller):
    """The ctypes function ``openblas_set_threads_callback_function`` of the OpenBLAS that
    threadpoolctl's ``controller`` drives, or None (another BLAS, an OpenMP build of OpenBLAS --
    whose threads are OpenMP's already -- or an OpenBLAS older than 0.3.28)."""
    if controller is None or getattr(controller, "internal_api", None) != "openblas":
        return None
    if getattr(controller, "threading_layer", None) != "pthreads":
        return None
    setter, _ = symbol(controller, "openblas_set_threads_callback_function")
    if setter is not None:
        setter.argtypes = [ctypes.c_void_p]
        setter.restype = None
    return setter


def gemm_addresses(controller):
    """({dtype char: address of cblas_sgemm / cblas_dgemm}, whether sizes are 64-bit)."""
    addresses, ilp64 = {}, False
    for char, name in (("f", "cblas_sgemm"), ("d", "cblas_dgemm")):
        function, suffix = symbol(controller, name)
        if function is not None:
            addresses[char] = ctypes.cast(function, ctypes.c_void_p).value
            ilp64 = suffix in ("64_", "_64")
    return addresses, ilp64


def unavailable_reason(controller) -> str | None:
    """Why the pool cannot be shared here, or None when it can (Numba's layer aside)."""
    if os.environ.get(ENV, "auto").lower() in ("0", "off", "false", "no"):
        return f"{ENV}=0"
    if _forked_child:
        return "forked child of a process that used GNU OpenMP"
    for name in ("OMP_THREAD_LIMIT", "OMP_DYNAMIC"):
        if os.environ.get(name):
            return f"{name} is set (OpenMP may then run fewer threads than BLAS has jobs)"
    if (os.cpu_count() or 1) < 2:
        return "one core"
    if callback_setter(controller) is None:
        return "NumPy's BLAS is not an OpenBLAS (0.3.28+, pthreads) with a threads callback"
    return None


def choose_threading_layer(controller) -> str:
    """Numba's threading layer for tensornet's kernels: ``omp`` when the pool can be shared,
    else ``workqueue``, whose idle threads sleep. Numba's OpenMP threads spin while idle: beside
    OpenBLAS' own spinning threads on two cores, each pool waits for the other's to yield."""
    if unavailable_reason(controller) is not None:
        return "workqueue"
    try:
        from numba.np.ufunc import omppool  # noqa: F401  (needs GNU OpenMP, libgomp1)
    except ImportError:
        return "workqueue"
    return "omp"


def _after_fork_in_child():
    """A forked child of a process whose Numba threads are GNU OpenMP's never shares the pool."""
    global _forked_child
    threads = sys.modules.get("tensornet.backend._numba_threads")
    if threads is not None and threads.THREADING_LAYER == "omp":
        _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
