"""One call of :mod:`._numba_step`'s compiled training step: the int64 argument block its two
jobs read (:data:`._numba_step.ARGS` names the slots) and their launch on the shared pool.

Why a block kept from step to step: a step's Python around the two launches is overhead on every
batch of ``fit``. Most slots -- the addresses of the parameters, gradients, optimizer state and
workspaces, and their sizes -- stay the same for as long as those arrays live, so the block is
made once per set of arrays (found by their identities, in a dict the caller owns: a model's
step keeps its own, which goes with it) and a call fills in only the batch's slots
(:data:`PER_CALL`).
"""
from __future__ import annotations

import numpy as np

from ._numba_blas import run_jobs
from ._numba_step import (ACT_SIZE, ADAM, ARGS, BATCH, DZ, FAN_IN0, FLOATS, GEMM, GRADS, HAS_DECAY, LABEL_COUNT,
                          LABELS, LAYERS, LOSSES, PARAM_SIZE, PARAMS, PROBS, RULE, SPARSE, STATE_SIZE, TABLE, UPDATE,
                          VELOCITY, Y_COLS, Y_ROWS, M, V, X, Y, ACTS, jobs)

__all__ = ["mlp_train_step"]

#: The slots a call fills: the batch's arrays, sizes and switches.
PER_CALL = [X, Y, LABELS, BATCH, FAN_IN0, Y_ROWS, LABEL_COUNT, SPARSE, RULE, HAS_DECAY, UPDATE]
#: The address slots of the arrays that stay from step to step, in :func:`_block`'s order.
FIXED = [PARAMS, GRADS, VELOCITY, M, V, TABLE, ACTS, DZ, PROBS, LOSSES, FLOATS]
#: Blocks a caller's dict keeps at most (one per batch size in use).
KEPT_BLOCKS = 8


def _block(blocks, gemm, params, grads, velocity, m, v, table, acts, dz, probs, losses, floats):
    """The argument block of these arrays (:data:`FIXED`' slots), made once per set of arrays
    and kept in ``blocks``: the arrays are held with it, so their identities stay theirs."""
    fixed = (params, grads, velocity, m, v, table, acts, dz, probs, losses, floats)
    key = (gemm,) + tuple(map(id, fixed))
    if key not in blocks:
        if len(blocks) >= KEPT_BLOCKS:  # another batch size: forget the oldest
            del blocks[next(iter(blocks))]
        args = np.zeros(len(ARGS), np.int64)
        args[FIXED] = [array.ctypes.data for array in fixed]
        args[[GEMM, Y_COLS, LAYERS, PARAM_SIZE, STATE_SIZE, ACT_SIZE]] = (
            gemm, probs.shape[1], table.shape[0], params.shape[0], min(velocity.shape[0], m.shape[0], v.shape[0]),
            acts.shape[0])
        blocks[key] = (args, fixed)
    return blocks[key][0]


def mlp_train_step(gemm, x, y, labels, sparse, params, grads, table, acts, dz, probs, losses, rule, floats, state,
                   blocks, has_decay=False, update=True, while_waiting=None):
    """One training step of the network in ``table`` on the batch ``x`` (B, k0) with targets
    ``y`` (B, n_last; ``labels`` (B,) when ``sparse``): the softmax ``probs`` are left in
    ``probs``, the gradients in ``grads``, the update in ``params`` and the optimizer's ``state``
    -- ``(velocity,)`` for SGD (``rule`` 0, 1, 2: the ``sgd`` kernel's mode; ``has_decay``: weight
    decay), ``(m, v)`` for Adam (``rule`` :data:`._numba_step.ADAM`) -- with the scalars in
    ``floats`` (float64, :data:`._numba_step.FLOAT_SLOTS`). With ``update`` False the gradients
    are made and nothing is updated. ``losses`` (float64, one per thread) receives each thread's
    loss sum; returns their sum. Every array must be C-contiguous: the jobs read them in place.
    ``blocks``: the caller's dict of argument blocks (:func:`_block`). ``while_waiting``: as
    :func:`._numba_step.callbacks`' (the first call compiles the jobs)."""
    rows_job, weights_job = jobs(params.dtype, sparse, rule == ADAM, while_waiting)
    velocity, m, v = (state[0], params, params) if rule != ADAM else (params, state[0], state[1])
    args = _block(blocks, gemm, params, grads, velocity, m, v, table, acts, dz, probs, losses, floats)
    args[PER_CALL] = (x.ctypes.data, y.ctypes.data, labels.ctypes.data, x.shape[0], x.shape[1], y.shape[0],
                      labels.shape[0], int(sparse), rule, int(has_decay), int(update))
    threads = np.int32(losses.shape[0])
    block = np.uint64(args.ctypes.data)
    run_jobs(np.uint64(rows_job), threads, np.uint64(0), block, threads)
    run_jobs(np.uint64(weights_job), threads, np.uint64(0), block, threads)
    return losses.sum()
