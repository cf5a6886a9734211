"""Numba's threading layer for tensornet's CPU kernels, chosen as this module is imported (before
any parallel kernel is compiled or loaded), and :func:`start_threads`, which loads it.

``omp`` (GNU OpenMP) where NumPy's BLAS can run its jobs on the same threads
(:func:`.blas_library.choose_threading_layer`), else ``workqueue``. A layer the user chose
(``NUMBA_THREADING_LAYER``) is left alone.
"""
from __future__ import annotations

import os

import numba
import numpy as np
from numba import prange

from .blas_library import choose_threading_layer, numpy_blas_controller

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = choose_threading_layer(numpy_blas_controller())
#: The threading layer asked for (``numba.threading_layer()`` tells the one loaded, after a launch).
THREADING_LAYER = numba.config.THREADING_LAYER


@numba.njit(parallel=True, cache=True, nogil=True)
def _touch(x):
    """x += 1, element by element, on the pool."""
    for i in prange(x.shape[0]):
        x[i] = x[i] + 1


def start_threads():
    """Launch Numba's thread pool (loading its threading layer) as a parallel function's first
    call does (``numba.np.ufunc.parallel._launch_threads``; where that function is missing, a
    one-element parallel loop, which costs a compilation on the first run). Code compiled
    against the pool -- :mod:`._numba_blas`' OpenBLAS callback -- needs it loaded before that
    code is built or read from the disk cache, or LLVM aborts the process ("Symbol not found:
    allocate_sched")."""
    try:
        from numba.np.ufunc.parallel import _launch_threads
    except ImportError:
        _touch(np.zeros(1, np.float32))
    else:
        _launch_threads()
