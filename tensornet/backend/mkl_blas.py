"""Intel MKL's GEMM for the NumPy backend's products, on the shared OpenMP threads (the ``mkl``
wheel, part of the ``fast`` extra on Linux x86-64).

Why: a training step is mostly products, and on the 2-core machine the same layered step of
784-512-512-10 takes 3.71 ms on MKL against 4.91 ms on the OpenBLAS in NumPy's wheels
(bench/README.md, "MKL is what makes the GEMM-bound cases faster than PyTorch").
PyTorch links MKL for the same reason. NumPy's wheels cannot be pointed at another BLAS, so
tensornet calls MKL's ``cblas_sgemm`` / ``cblas_dgemm`` itself, on the arrays in place
(transposed views become CBLAS' transpose flags), from compiled code (:mod:`._numba_blas`).

Only together with the shared pool (:mod:`.shared_pool`): MKL is loaded with its GNU OpenMP
threading layer, so its threads are the very GNU OpenMP threads Numba's ``omp`` layer runs the
fused kernels on -- one pool, as with OpenBLAS on the callback. Without that (no Numba, another
threading layer, no ``mkl`` package, ``TENSORNET_BLAS=numpy``) nothing here is loaded and
products go to ``numpy.matmul``. Inside a parallel region (two products side by side) MKL runs
each product on its caller's thread.
"""
from __future__ import annotations

import ctypes
import os

#: ``TENSORNET_BLAS``: ``auto`` or ``mkl`` (MKL when the ``mkl`` package is installed and the
#: pool is shared) or ``numpy`` (always NumPy's own BLAS).
ENV = "TENSORNET_BLAS"

_MKL_THREADING_GNU = 3
_MKL_INTERFACE_LP64 = 0


def find_mkl_rt():
    """The path of ``libmkl_rt`` installed by the ``mkl`` distribution, or None."""
    try:
        from importlib import metadata

        files = metadata.distribution("mkl").files or []
    except Exception:  # not installed, or metadata unreadable
        return None
    for file in files:
        if file.name.startswith("libmkl_rt.so"):
            path = str(file.locate())
            if os.path.exists(path):
                return path
    return None


def wanted() -> bool:
    """Whether MKL may be used (``TENSORNET_BLAS`` is not ``numpy``)."""
    value = os.environ.get(ENV, "auto").lower()
    if value not in ("auto", "numpy", "mkl"):
        raise ValueError(f"{ENV} must be auto, mkl or numpy; got {value!r}")
    return value != "numpy"


class MklGemm:
    """MKL loaded on GNU OpenMP threads: its ``cblas_sgemm`` / ``cblas_dgemm`` as ctypes
    functions (``functions``) and as addresses (``addresses``, which the compiled callers in
    :mod:`._numba_blas` take)."""

    def __init__(self, path, threads):
        library = ctypes.CDLL(path)
        # The threading layer must be chosen before MKL does anything else; it answers with the
        # layer in force, which is another one if MKL was already in use in this process.
        layer = library.MKL_Set_Threading_Layer(_MKL_THREADING_GNU)
        if layer != _MKL_THREADING_GNU:
            raise RuntimeError(f"MKL's threading layer is already {layer}, not GNU OpenMP")
        library.MKL_Set_Interface_Layer(_MKL_INTERFACE_LP64)
        library.MKL_Set_Num_Threads(int(threads))
        self._library = library
        self.version = _version(library)
        self.functions, self.addresses = {}, {}
        for char, name, real in (("f", "cblas_sgemm", ctypes.c_float), ("d", "cblas_dgemm", ctypes.c_double)):
            function = getattr(library, name)
            function.argtypes = ([ctypes.c_int] * 6 + [real, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                                       ctypes.c_int, real, ctypes.c_void_p, ctypes.c_int])
            function.restype = None
            self.functions[char] = function
            self.addresses[char] = ctypes.cast(function, ctypes.c_void_p).value


def _version(library):
    buffer = ctypes.create_string_buffer(256)
    try:
        library.MKL_Get_Version_String(buffer, len(buffer))
    except AttributeError:
        return "MKL"
    return buffer.value.decode(errors="replace").strip()


def load(threads):
    """An :class:`MklGemm` on ``threads`` threads, or (None, reason)."""
    if not wanted():
        return None, f"{ENV}=numpy"
    path = find_mkl_rt()
    if path is None:
        return None, "the mkl package is not installed"
    try:
        return MklGemm(path, threads), None
    except (OSError, AttributeError, RuntimeError) as exc:
        return None, f"MKL could not be loaded: {exc}"
