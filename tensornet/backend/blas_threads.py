"""How many threads NumPy's BLAS uses for one matrix product.

A product smaller than ``SMALL_PRODUCT_MACS`` multiply-adds runs on one thread: split over
two, it gains nothing, and the second BLAS thread then busy-waits beside the element-wise
work of the training step on the other core, slowing it (784-64-10 at batch 32: 321 us per
step with two BLAS threads, 172 us with one; bench/NOTES.md). Larger products use every
thread. The count is changed through threadpoolctl (the `fast` extra) only when it differs
from the last one set, and ``restore()`` puts back the library's own setting; without
threadpoolctl nothing is changed.
"""
from __future__ import annotations

#: Products below this many multiply-adds (m * k * n) run on one BLAS thread.
SMALL_PRODUCT_MACS = 4_000_000


def numpy_blas_controller():
    """threadpoolctl's controller of the BLAS NumPy's wheel ships (under ``numpy.libs``), or
    None (no threadpoolctl, or a NumPy linked to another BLAS: then nothing is changed). Other
    BLAS libraries in the process (PyTorch's, say) are left alone."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    import os

    import numpy

    numpy_libs = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    for controller in ThreadpoolController().select(user_api="blas").lib_controllers:
        path = os.path.abspath(controller.filepath)
        if path.startswith(os.path.join(numpy_libs, "numpy")):  # numpy/ or numpy.libs/
            return controller
    return None


class BlasThreads:
    """Sets the BLAS thread count per product size; ``restore()`` undoes it."""

    def __init__(self):
        self._controller = None
        self._default = None
        self._current = None
        self._looked_up = False

    def _lookup(self):
        self._looked_up = True
        self._controller = numpy_blas_controller()
        if self._controller is not None:
            self._default = self._current = self._controller.num_threads

    def for_product(self, macs):
        """Use one thread for a product of ``macs`` multiply-adds below the threshold, else all."""
        if not self._looked_up:
            self._lookup()
        if self._controller is None:
            return
        wanted = 1 if macs < SMALL_PRODUCT_MACS else self._default
        if wanted != self._current:
            self._controller.set_num_threads(wanted)
            self._current = wanted

    def restore(self):
        """Give BLAS back the thread count it had before."""
        if self._controller is not None and self._current != self._default:
            self._controller.set_num_threads(self._default)
            self._current = self._default
