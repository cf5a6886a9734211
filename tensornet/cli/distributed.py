"""``tensornet train --distributed``: the command run once per rank of an MPI launch."""
from __future__ import annotations

import contextlib
import io
import sys


def run_distributed(args, run) -> int:
    """Join the MPI world and ``run(args)`` on every rank: ranks other than 0 print nothing and
    write no file; a rank that stops with a non-zero status ends every rank, naming itself."""
    from ..distributed import abort, init

    world = init()
    args.distributed = False
    with contextlib.redirect_stdout(sys.stdout if world.is_root else io.StringIO()):
        status = run(args)
    if status and world.size > 1:
        abort(world, status, f"tensornet train stopped with exit status {status}")
    return status
