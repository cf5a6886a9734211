"""The bias gradient of a convolution as a Numba kernel: :meth:`Backend.sum_rows` of dz
(n oh ow, f), for :class:`~tensornet.backend.numpy_conv.NumpyConvOps`' ``conv2d_backward``.

Why: NumPy's ``add.reduce(dz, axis=0)`` on a tall matrix with few columns (f = 8 .. 64) costs
about 3 ms for 128 x 28 x 28 x 8 on one core (``bench/conv_patch_ops.py``); here one pass reads
the rows in order with the f sums in registers. ``parts`` row blocks are summed on their own
(``prange``) and their sums added in block order; ``parts`` = 1 adds every row in order, as
the reference does.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange, uint64

from ._numba_kernels import _twin

__all__ = ["sum_rows"]


@numba.njit(nogil=True, inline="always")
def add_blocks(partial, out, count):
    """out[c] = partial[0, c] + partial[1, c] + ... + partial[parts - 1, c], in block order, for
    c < ``count`` (a block's row of ``partial`` may be longer)."""
    for c in range(count):
        out[c] = partial[0, c]
    for k in range(1, partial.shape[0]):
        for c in range(count):
            out[c] += partial[k, c]


def _sum_rows(dz, out, parts):
    """out[c] = sum over the blocks k < parts (in order) of sum_{i in block k} dz[i, c]."""
    m, f = dz.shape
    df = dz.reshape(-1)
    partial = np.zeros((parts, f), dtype=dz.dtype)
    step = (m + parts - 1) // parts
    for k in prange(parts):
        acc = partial[k]
        for i in range(k * step, min(m, (k + 1) * step)):
            s = uint64(i * f)  # unsigned: no negative-index wraparound test, the adds vectorise
            for c in range(uint64(f)):
                acc[c] += df[s + c]
    add_blocks(partial, out, f)


sum_rows = _twin(_sum_rows)
