"""One thread pool for NumPy's BLAS and tensornet's fused CPU kernels.

NumPy's wheels ship OpenBLAS with its own pthreads pool, whose idle threads spin for about
0.1 s after each product. tensornet's fused element-wise kernels (Numba) have a pool of their
own, and two pools on the same cores fight: a threaded kernel right after a product waits
until OpenBLAS' spinning thread yields the core (bench/README.md, "One thread pool").

OpenBLAS 0.3.28 added ``openblas_set_threads_callback_function``: the caller supplies the thread
pool OpenBLAS runs its parallel jobs on. While a fit, evaluate or predict loop runs,
:class:`SharedBlasPool` points NumPy's OpenBLAS at Numba's OpenMP threads
(:mod:`._numba_blas`), so one pool of threads does the products and the fused kernels,
and kernels from :data:`PARALLEL_MIN` elements run threaded. Two independent products (a
layer's weight and input gradients) run side by side, one thread each
(:meth:`SharedBlasPool.two_products`; with MKL only large ones, ``MKL_SIDE_BY_SIDE_MACS``).
When the loop ends the callback is removed and OpenBLAS has its own threads back.

It is used only where it is safe (:func:`.blas_library.unavailable_reason` says why not):

- Numba's ``omp`` threading layer (GNU OpenMP) loads, and ``NUMBA_THREADING_LAYER`` is not set
  to another one (:func:`.blas_library.choose_threading_layer` picks ``omp`` at import for
  this, else ``workqueue``). OpenBLAS' jobs busy-wait on each other, so they must run at once:
  an OpenMP team gives each its own thread; a task pool (TBB, the work queue) need not.
- NumPy's BLAS is an OpenBLAS with pthreads that exports the setter, and the machine has two
  cores or more. ``OMP_THREAD_LIMIT`` or ``OMP_DYNAMIC`` (which can shrink a team) are unset.
- OpenBLAS' thread count is capped at Numba's while the callback is in place, so no product
  has more jobs than there are threads.
- ``TENSORNET_SHARED_POOL=0`` switches all of it off.
- GNU OpenMP does not survive ``fork``: a forked child removes the callback and runs every
  kernel single-threaded.

With the ``mkl`` package installed (part of the ``fast`` extra on Linux x86-64), the products
themselves go to MKL on the same threads (:mod:`.mkl_blas`).
"""
from __future__ import annotations

import os
import sys

from . import mkl_blas
from .blas_library import callback_setter, choose_threading_layer, gemm_addresses, unavailable_reason

#: With the pool shared, fused kernels over at least this many elements run threaded: no other
#: pool's threads spin beside them, so threads pay off from far fewer elements than the
#: ``PARALLEL_MIN`` of :mod:`._numba_kernels` that applies where BLAS keeps its own threads.
PARALLEL_MIN = 32768

_installed = []  # the pools whose callback is in place, for the fork handler


def describe(controller) -> str:
    """How a loop's products and kernels will share threads here (``tensornet info``), without
    loading anything."""
    threads = sys.modules.get("tensornet.backend._numba_threads")
    layer = threads.THREADING_LAYER if threads is not None else choose_threading_layer(controller)
    reason = unavailable_reason(controller)
    if reason is None and layer != "omp":
        reason = f"Numba's threading layer is {layer!r}, not 'omp' (GNU OpenMP, Debian's libgomp1)"
    if reason is not None:
        return f"BLAS on its own threads ({reason})"
    products = "NumPy's OpenBLAS"
    if mkl_blas.wanted() and mkl_blas.find_mkl_rt() is not None:
        products = "MKL"
    return f"inside fit / evaluate / predict: {products} products and the Numba kernels on one GNU OpenMP pool"


class SharedBlasPool:
    """Points one OpenBLAS at Numba's threads (``install``) and back (``remove``)."""

    def __init__(self, controller):
        self._controller = controller
        self._setter = None
        self._gemm, self._two_products, self._one_product = {}, None, None
        self.threads = 0  # Numba's thread count while installed, else 0
        self.mkl, self.mkl_reason = None, None  # MKL's GEMM (mkl_blas.MklGemm) once loaded, or why not
        self.reason = unavailable_reason(controller)

    @property
    def active(self) -> bool:
        return self.threads > 0

    def install(self) -> int:
        """Hand OpenBLAS' jobs to Numba's threads; returns their count (0: not possible here,
        with ``reason`` saying why)."""
        if self.active or self.reason is not None:
            return self.threads
        import numba

        from . import _numba_blas  # launches Numba's threads first: its cached code needs them

        layer = numba.threading_layer()
        if layer != "omp":
            self.reason = f"Numba's threading layer is {layer!r}, not 'omp'"
            return 0
        threads = numba.get_num_threads()
        if threads < 2:
            self.reason = "Numba runs one thread"
            return 0
        self._setter = callback_setter(self._controller)
        self._gemm, ilp64 = gemm_addresses(self._controller)
        if self.mkl is None and not self.mkl_reason:
            self.mkl, self.mkl_reason = mkl_blas.load(threads)
        if self.mkl is not None:  # MKL's GEMM on the same GNU OpenMP threads
            self._gemm, ilp64 = dict(self.mkl.addresses), False
            self._one_product = _numba_blas.one_product_lp64
        self._two_products = _numba_blas.two_products_ilp64 if ilp64 else _numba_blas.two_products_lp64
        self._setter(_numba_blas.callback.address)
        _installed.append(self)
        self.threads = threads
        return threads

    @property
    def gemm(self):
        """MKL's GEMM while installed with it (products then go there, not to NumPy), else None."""
        return self.mkl if self.active else None

    def mkl_product(self, trans_a, trans_b, m, n, k, a, lda, b, ldb, out, ldc):
        """``out = op(a) op(b)`` through MKL on the pool (row-major; the arrays in place)."""
        t = out.dtype.type
        self._one_product(self._gemm[out.dtype.char], trans_a, trans_b, m, n, k, a, lda, b, ldb, out, ldc, t(1),
                          t(0))

    def can_multiply(self, dtype) -> bool:
        """Whether :meth:`two_products` takes arrays of ``dtype``."""
        return self.active and dtype.char in self._gemm

    def two_products(self, params, dtype):
        """Run two independent products at once, one pool thread each: row t of ``params``
        (int64: trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, as CBLAS takes them, row-major,
        addresses as integers) is ``c = op(a) op(b)``, through MKL when loaded, else OpenBLAS
        (which must be set to one thread)."""
        t = dtype.type
        self._two_products(self._gemm[dtype.char], params, t(1), t(0))

    def remove(self):
        """Give OpenBLAS its own threads back."""
        if self.active:
            self._setter(None)
            _installed.remove(self)
            self.threads = 0

    def remove_in_child(self):
        """After ``fork``: OpenBLAS' own threads again, and this pool never used again."""
        self._setter(None)
        self.threads = 0
        self.reason = "forked child of a process that used GNU OpenMP"


def _after_fork_in_child():
    """In a forked child: OpenBLAS' own threads again, and every kernel serial where Numba's
    threads are GNU OpenMP's (which aborts a forked child's parallel region)."""
    for pool in _installed:
        pool.remove_in_child()
    _installed.clear()
    threads = sys.modules.get("tensornet.backend._numba_threads")
    kernels = sys.modules.get("tensornet.backend._numba_kernels")
    if threads is not None and kernels is not None and threads.THREADING_LAYER == "omp":
        kernels.PARALLEL_MIN = sys.maxsize


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
