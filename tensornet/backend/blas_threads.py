"""How many threads NumPy's BLAS uses for one matrix product, while a loop runs.

A product smaller than ``SMALL_PRODUCT_MACS`` multiply-adds runs on one thread: split over
two, it gains nothing, and the second BLAS thread then busy-waits beside the element-wise
work of the training step on the other core, slowing it (bench/README.md, "Small models stay
layered"). Larger products use every thread. All of it happens between ``begin()`` (a fit,
evaluate or predict loop starts) and ``restore()`` (it ends), which puts back the library's
own setting: a product outside a loop leaves BLAS as the user set it. The count is set through
threadpoolctl (the `fast` extra) only when it differs from the last one set; without
threadpoolctl the count is left alone.

Within a loop, from the first threaded product on, BLAS runs its jobs on the threads of
tensornet's fused kernels when that is possible (:mod:`.shared_pool`). A loop whose products
all run on one thread never starts that.
"""
from __future__ import annotations

from .blas_library import numpy_blas_controller
from .shared_pool import SharedBlasPool

#: Products below this many multiply-adds (m * k * n) run on one BLAS thread.
SMALL_PRODUCT_MACS = 4_000_000

#: With MKL, two independent products run side by side (one thread each) only from this many
#: multiply-adds each; smaller ones run one after the other on every thread, as fast or faster:
#: on 784-512-512-10 at batch 128 (pairs of 34M) 4.20 ms a step one after the other against
#: 4.37 ms side by side (bench/README.md). Without MKL the pair runs side by side from
#: ``SMALL_PRODUCT_MACS``.
MKL_SIDE_BY_SIDE_MACS = 1 << 29

#: With MKL, one product of at least this many multiply-adds runs as two halves of its output
#: side by side, one thread each (:func:`.cblas_params.halves_params`), as the large pairs do:
#: the two one-thread halves, each over its own half of the output, meet once at the end.
#: It serves 784-2048-2048-10 at batch 256, whose
#: forward products and first-layer weight gradient are 411M-1.07G multiply-adds (measured with
#: ``python bench/compare.py --cases mlp-2048``).
MKL_HALVES_MACS = 1 << 28


class BlasThreads:
    """Sets the BLAS thread count per product size and, for the length of a loop, runs BLAS on
    the fused kernels' threads (:mod:`.shared_pool`, when ``share_pool()`` says the kernels are
    in use); ``restore()`` undoes both."""

    def __init__(self, share_pool=lambda: False):
        self._share_pool = share_pool
        self._controller = None
        self._pool = None
        self._original = None  # the library's own count, put back by restore()
        self._default = None   # the count for large products: the original, capped at the pool's
        self._current = None
        self._looked_up = False
        self._in_loop = False  # between begin() and restore()

    def _lookup(self):
        self._looked_up = True
        self._controller = numpy_blas_controller()
        if self._controller is not None:
            self._original = self._default = self._current = self._controller.num_threads
            if self._share_pool():
                self._pool = SharedBlasPool(self._controller)

    def begin(self):
        """A loop starts: until ``restore()``, set the count per product and share the pool."""
        self._in_loop = True

    @property
    def in_loop(self) -> bool:
        """Whether a fit, evaluate or predict loop runs (between ``begin()`` and ``restore()``)."""
        return self._in_loop

    @property
    def reason(self):
        """Why BLAS does not run on the kernels' threads with MKL, or None when it does (or may yet)."""
        if self._pool is None:
            return "threadpoolctl cannot find NumPy's BLAS" if self._looked_up else None
        return self._pool.reason or self._pool.mkl_reason

    @property
    def threads(self) -> int:
        """The shared pool's thread count while BLAS runs on it, else 0."""
        return self._pool.threads if self._pool is not None else 0

    @property
    def shared(self) -> bool:
        """Whether BLAS runs on the fused kernels' threads now."""
        return self._pool is not None and self._pool.active

    def for_product(self, macs):
        """Use one thread for a product of ``macs`` multiply-adds below the threshold, else all
        (inside a loop; outside, nothing)."""
        if not self._in_loop:
            return
        if not self._looked_up:
            self._lookup()
        if self._controller is None:
            return
        wanted = 1 if macs < SMALL_PRODUCT_MACS else self._default
        if wanted > 1 and self._pool is not None and not self._pool.active and self._pool.reason is None:
            threads = self._pool.install()  # first threaded product of the loop
            if threads:  # never more BLAS jobs than pool threads: they must all run at once
                self._default = wanted = min(self._original, threads)
        if wanted != self._current:
            self._controller.set_num_threads(wanted)
            self._current = wanted

    @property
    def mkl(self):
        """MKL's GEMM when products go there now (:mod:`.mkl_blas`), else None."""
        return self._pool.gemm if self._pool is not None else None

    def mkl_product(self, *params):
        """One product through MKL (:meth:`.shared_pool.SharedBlasPool.mkl_product`); only while
        :attr:`mkl` is set."""
        self._pool.mkl_product(*params)

    def can_run_two(self, dtype) -> bool:
        """Whether :meth:`two_products` can run products of ``dtype`` now."""
        return self.shared and self._pool.can_multiply(dtype)

    def two_products(self, params, dtype):
        """Two independent products at once, one pool thread each
        (:meth:`.shared_pool.SharedBlasPool.two_products`); BLAS is set to one thread for it."""
        if self._current != 1:
            self._controller.set_num_threads(1)
            self._current = 1
        self._pool.two_products(params, dtype)

    def restore(self):
        """Give BLAS back its own threads and the thread count it had before."""
        self._in_loop = False
        if self._pool is not None:
            self._pool.remove()
            self._default = self._original
        if self._controller is not None and self._current != self._original:
            self._controller.set_num_threads(self._original)
            self._current = self._original
