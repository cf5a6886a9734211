"""The world of ranks: which process this is among how many, and the communicator between them."""
from __future__ import annotations

import os
import warnings

from .faults import install_abort_on_error, timeout_seconds

# Environment variables a launcher sets in each process: (size, rank, local rank).
_LAUNCHERS = (("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),
              ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),
              ("PMIX_SIZE", "PMIX_RANK", "PMIX_LOCAL_RANK"))

_current = None


def launched_by_mpi() -> int:
    """The number of processes an MPI launcher started (from its environment), 1 without one."""
    for size, _, _ in _LAUNCHERS:
        if size in os.environ:
            try:
                return int(os.environ[size])
            except ValueError:
                continue
    return 1


def local_rank_from_launcher():
    """This process's rank among those of its machine, as the launcher's environment gives it, or
    None when the launcher sets none (``init()`` then asks MPI, a collective without a timeout)."""
    for _, _, local in _LAUNCHERS:
        if local in os.environ:
            try:
                return int(os.environ[local])
            except ValueError:
                continue
    return None


class World:
    """``rank`` (0-based), ``size`` (number of ranks), ``local_rank`` (rank among the processes of
    this machine: the GPU it takes) and ``comm`` (mpi4py's COMM_WORLD, None for size 1)."""

    def __init__(self, rank=0, size=1, local_rank=0, comm=None, timeout=None, bucket_bytes=None):
        self.rank, self.size, self.local_rank, self.comm = rank, size, local_rank, comm
        self.timeout = timeout_seconds() if timeout is None else timeout
        #: None: one all-reduce of the whole flat gradient buffer after backward; a number of
        #: bytes: buckets of about that size all-reduced as backward produces them (overlap).
        self.bucket_bytes = bucket_bytes
        #: The GPU this rank took (its local rank, modulo the GPUs present), or None.
        self.device = None
        #: NCCL collectives for CuPy buffers, made on first use.
        self.nccl = None

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints, logs and writes checkpoints."""
        return self.rank == 0

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size}, local_rank={self.local_rank})"


def init(bucket_bytes=None) -> World:
    """Join the MPI launch this process belongs to and return its :class:`World`; a world of
    size 1 (no MPI imported) when no launcher started the process. Calling it again returns the
    same world. Under a launcher an uncaught exception on any rank aborts every rank.

    ``bucket_bytes`` (e.g. ``25 * 2**20``, as DDP) overlaps the all-reduce with backward in
    buckets of about that size, last layer first; None (the default) all-reduces the whole flat
    gradient buffer in one call after backward."""
    global _current
    if bucket_bytes is not None and (isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int)
                                     or bucket_bytes <= 0):
        raise ValueError(f"bucket_bytes must be a positive int or None; got {bucket_bytes!r}")
    if _current is not None:
        _current.bucket_bytes = bucket_bytes
        return _current
    if launched_by_mpi() <= 1:
        _current = World()
        return _current
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("tensornet.distributed.init() runs under an MPI launcher and needs mpi4py: "
                          "pip install 'tensornet[distributed]'") from exc
    comm = MPI.COMM_WORLD
    local_rank = local_rank_from_launcher()
    if local_rank is None:
        local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        local_rank = local.Get_rank()
        local.Free()
    world = World(comm.Get_rank(), comm.Get_size(), local_rank, comm, bucket_bytes=bucket_bytes)
    install_abort_on_error(world)
    from .nccl import use_local_gpu

    world.device = use_local_gpu(world)
    _current = world
    return world


def current_world():
    """The world ``init()`` returned, or None before ``init()``. Warns once when an MPI launcher
    started several processes but ``init()`` was not called (each rank then trains alone)."""
    if _current is None and launched_by_mpi() > 1 and not getattr(current_world, "_warned", False):
        current_world._warned = True
        warnings.warn(f"this process is one of {launched_by_mpi()} started by an MPI launcher, but "
                      "tensornet.distributed.init() was not called: each rank trains alone on all the data",
                      RuntimeWarning, stacklevel=3)
    return _current


def is_root() -> bool:
    """True unless ``init()`` joined a world in which this process is not rank 0: whether this
    process prints, logs and writes checkpoints."""
    return _current is None or _current.rank == 0
