"""The CPU backend: the reference operations of :class:`Backend` on NumPy."""
from __future__ import annotations

import numpy

from .base import Backend


class NumpyBackend(Backend):
    """Runs every operation with NumPy on the host (BLAS for the matrix products)."""

    name = "numpy"
    xp = numpy
