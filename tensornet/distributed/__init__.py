"""Data-parallel training across processes: the world of ranks and the collectives ``fit`` uses.

``init()`` joins an MPI launch (``mpirun -n K ...``) through mpi4py and returns the
:class:`World` (``rank``, ``size``, ``local_rank``); without a launcher it is a world of size 1
and nothing else changes. After it, ``fit`` trains data-parallel with ``batch_size`` as the
global batch: rank 0's weights and optimizer state are broadcast first, each step all-reduces
the flat gradient buffer once (each rank's gradient of its mean weighted by its share n_r / N of
the global batch, so the sum is the gradient of the mean over all N examples), and loss and
metric sums are all-reduced so History is the same on every rank.

mpi4py is imported here only, and only by ``init()`` under a launcher: ``import tensornet``
never needs it.
"""
from .faults import DistributedError, abort
from .world import World, current_world, init, is_root, launched_by_mpi

__all__ = ["DistributedError", "abort", "World", "current_world", "init", "is_root", "launched_by_mpi"]
