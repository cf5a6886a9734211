"""NCCL collectives on CuPy device buffers (``cupy.cuda.nccl``): gradients never go through host
memory. Rank 0 draws NCCL's unique id and broadcasts it over MPI; every rank then joins one
NCCL communicator on the GPU of its local rank (chosen by ``init()``). Each call is queued on the
current CUDA stream, after the kernels that wrote the buffer and before those that read it.
"""
from __future__ import annotations

from .collectives import broadcast_object
from .faults import DistributedError

_TYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "float16": "NCCL_FLOAT16"}


def use_local_gpu(world):
    """Make the GPU of this rank's local rank the current device (when CuPy and a GPU are there)."""
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, no driver or no GPU: the ranks train on the CPU
        return None
    if count == 0:
        return None
    device = world.local_rank % count
    cupy.cuda.Device(device).use()
    return device


class NcclCollectives:
    """All-reduce (sum) and broadcast of contiguous CuPy arrays across the world's GPUs."""

    def __init__(self, world):
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as exc:
            raise DistributedError("data-parallel fit on the CuPy backend needs CuPy built with NCCL "
                                   "(cupy.cuda.nccl)") from exc
        self.cupy, self.nccl, self.world = cupy, nccl, world
        unique_id = nccl.get_unique_id() if world.rank == 0 else None
        unique_id = broadcast_object(world, unique_id, what="the broadcast of NCCL's unique id")
        self.comm = nccl.NcclCommunicator(world.size, unique_id, world.rank)

    def _type(self, array, what):
        name = _TYPES.get(str(array.dtype))
        if name is None or not array.flags.c_contiguous:
            raise DistributedError(f"{what}: NCCL takes contiguous float16/32/64 device buffers; got "
                                   f"{array.dtype}, contiguous={array.flags.c_contiguous}")
        return getattr(self.nccl, name)

    def allreduce_sum_(self, array, what="the gradient all-reduce"):
        """``array`` <- the sum over ranks, in place on the device."""
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._type(array, what),
                            self.nccl.NCCL_SUM, stream)
        return array

    def broadcast_(self, array, root=0, what="the broadcast of rank 0's weights"):
        """``array`` <- rank ``root``'s ``array``, in place on the device."""
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.bcast(array.data.ptr, array.size, self._type(array, what), root, stream)
        return array
