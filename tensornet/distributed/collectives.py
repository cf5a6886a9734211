"""The collectives data-parallel ``fit`` needs, on host (NumPy) buffers through MPI.

Every call is non-blocking underneath (``Iallreduce`` / ``Ibcast``) and waited on with the
world's timeout (:func:`~tensornet.distributed.faults.wait`), so a stopped peer becomes a clear
error instead of a hang.
"""
from __future__ import annotations

import pickle

from .faults import DistributedError, wait


def _check_host(array, what):
    if type(array).__module__.split(".")[0] != "numpy":
        raise DistributedError(f"{what}: the MPI all-reduce takes host (NumPy) buffers; got "
                               f"{type(array).__module__}.{type(array).__name__}")
    if not array.flags.c_contiguous:
        raise DistributedError(f"{what}: the buffer must be contiguous")


def allreduce_sum_(world, array, what="all-reduce"):
    """``array`` <- the elementwise sum of every rank's ``array``, in place (``MPI.IN_PLACE``)."""
    if world.size == 1:
        return array
    from mpi4py import MPI

    _check_host(array, what)
    wait(world.comm.Iallreduce(MPI.IN_PLACE, array, op=MPI.SUM), world, what)
    return array


def start_allreduce_sum(world, array, what="all-reduce"):
    """Start ``allreduce_sum_`` on ``array`` and return the request (wait with :func:`finish`)."""
    from mpi4py import MPI

    _check_host(array, what)
    return world.comm.Iallreduce(MPI.IN_PLACE, array, op=MPI.SUM)


def finish(world, requests, what="all-reduce"):
    """Wait for every request of :func:`start_allreduce_sum`, with the world's timeout."""
    for request in requests:
        wait(request, world, what)


def broadcast_(world, array, root=0, what="broadcast"):
    """``array`` <- rank ``root``'s ``array`` on every rank, in place."""
    if world.size == 1:
        return array
    _check_host(array, what)
    wait(world.comm.Ibcast(array, root=root), world, what)
    return array


def broadcast_object(world, value, root=0, what="broadcast"):
    """Rank ``root``'s ``value`` (any picklable object) on every rank."""
    if world.size == 1:
        return value
    import numpy

    payload = numpy.frombuffer(pickle.dumps(value), numpy.uint8) if world.rank == root else None
    size = numpy.array([0 if payload is None else payload.size], numpy.int64)
    broadcast_(world, size, root, what)
    buffer = payload.copy() if payload is not None else numpy.empty(int(size[0]), numpy.uint8)
    broadcast_(world, buffer, root, what)
    return value if world.rank == root else pickle.loads(buffer.tobytes())


def allgather_int(world, value, what="all-gather"):
    """Every rank's integer ``value``, as a list indexed by rank."""
    if world.size == 1:
        return [int(value)]
    import numpy

    values = numpy.zeros(world.size, numpy.int64)
    values[world.rank] = int(value)
    allreduce_sum_(world, values, what)
    return [int(v) for v in values]


def allreduce_floats(world, values, what="all-reduce of the loss and metric sums"):
    """The sums over ranks of a list of host numbers (float64), as a list."""
    if world.size == 1:
        return [float(v) for v in values]
    import numpy

    buffer = numpy.array([float(v) for v in values], numpy.float64)
    allreduce_sum_(world, buffer, what)
    return [float(v) for v in buffer]


def allgather_objects(world, value, what="all-gather"):
    """Every rank's ``value`` (any picklable object), as a list indexed by rank: the pickles'
    lengths by :func:`allgather_int`, then one all-reduce of a byte buffer in which each rank
    fills only its own segment (the sum of one segment and zeros is that segment)."""
    if world.size == 1:
        return [value]
    import numpy

    payload = numpy.frombuffer(pickle.dumps(value), numpy.uint8)
    sizes = allgather_int(world, payload.size, what)
    offsets = numpy.concatenate([[0], numpy.cumsum(sizes)]).astype(int)
    buffer = numpy.zeros(int(offsets[-1]), numpy.uint8)
    buffer[offsets[world.rank]:offsets[world.rank + 1]] = payload
    allreduce_sum_(world, buffer, what)
    return [pickle.loads(buffer[offsets[r]:offsets[r + 1]].tobytes()) for r in range(world.size)]
