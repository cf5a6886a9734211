"""A failing rank stops the whole job, never a hang.

An exception that escapes on any rank is printed with the rank's number and then ends every rank
through ``MPI_Abort`` (``mpirun`` exits non-zero). A rank that dies is detected by the launcher,
which ends the others. A collective that gets no answer within ``timeout`` seconds
(``TENSORNET_DISTRIBUTED_TIMEOUT``, default 300) raises :class:`DistributedError` naming the
waiting rank and the operation, and that exception aborts the job the same way.
"""
from __future__ import annotations

import os
import sys
import time
import traceback


class DistributedError(RuntimeError):
    """A data-parallel run cannot continue (a peer stopped answering, or inputs disagree across ranks)."""


def timeout_seconds() -> float:
    """The collective timeout: ``TENSORNET_DISTRIBUTED_TIMEOUT`` seconds (default 300)."""
    raw = os.environ.get("TENSORNET_DISTRIBUTED_TIMEOUT", "300")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"TENSORNET_DISTRIBUTED_TIMEOUT must be a number of seconds; got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"TENSORNET_DISTRIBUTED_TIMEOUT must be > 0; got {raw!r}")
    return value


def _others(world) -> str:
    """The ranks a waiting rank depends on, named: ``rank 1`` or ``one of ranks 1, 2, 3``."""
    others = [rank for rank in range(world.size) if rank != world.rank]
    if len(others) == 1:
        return f"rank {others[0]}"
    return "one of ranks " + ", ".join(str(rank) for rank in others)


def wait(request, world, what):
    """Wait for a non-blocking MPI request, polling ``Test`` until ``timeout_seconds()`` pass;
    then :class:`DistributedError` naming this rank, ``what`` and the ranks it waited for (the
    excepthook aborts the job)."""
    if request.Test():
        return
    deadline = time.monotonic() + world.timeout
    pause = 1e-6
    while not request.Test():
        if time.monotonic() > deadline:
            raise DistributedError(f"rank {world.rank} of {world.size}: {what} got no answer within "
                                   f"{world.timeout:g} s (TENSORNET_DISTRIBUTED_TIMEOUT): {_others(world)} has "
                                   "stopped or is stuck before reaching it")
        time.sleep(pause)
        pause = min(pause * 2, 1e-3)


def install_abort_on_error(world):
    """Make an uncaught exception on this rank print ``tensornet rank R of K failed`` with its
    traceback and abort every rank (exit status 1), instead of leaving the others waiting."""
    previous = sys.excepthook

    def abort(kind, value, tb):
        message = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(f"tensornet: rank {world.rank} of {world.size} failed; stopping all ranks.\n{message}")
        sys.stderr.flush()
        try:
            world.comm.Abort(1)
        finally:  # Abort does not return; if it somehow does, keep the normal report
            previous(kind, value, tb)

    sys.excepthook = abort


def abort(world, status, message):
    """End every rank with exit ``status`` after printing ``message`` naming this rank (a rank
    that stops on a handled error must not leave the others waiting in a collective)."""
    sys.stderr.write(f"tensornet: rank {world.rank} of {world.size}: {message}; stopping all ranks\n")
    sys.stderr.flush()
    world.comm.Abort(status)
