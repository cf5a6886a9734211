"""The CuPy backend's launch geometry, for launches on the harness.

The constants are read from ``tensornet/backend/cupy_backend.py`` itself (its source, parsed:
the module imports CuPy, so it cannot be imported here), and the grid formulas below are those
of ``CupyBackend._launch_elementwise`` and ``CupyBackend._row_blocks`` (the one-warp-per-row
kernels: the softmax cross-entropy and the output layer's bias + softmax):

    elementwise: blocks = min(ceil(n / BLOCK_SIZE), BLOCKS_PER_SM * multiprocessors)
    softmax:     blocks = min(ceil(rows / (BLOCK_SIZE / 32)), ROW_BLOCKS_PER_SM * multiprocessors)

with BLOCK_SIZE threads per block. ``MULTIPROCESSORS`` stands in for the device's count, small
so that modest inputs are larger than a whole grid and the grid-stride loops wrap.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tensornet.backend import cupy_optimizers

MULTIPROCESSORS = 2


def _constants() -> dict[str, int]:
    path = Path(cupy_optimizers.__file__).with_name("cupy_backend.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, int):
                found[node.targets[0].id] = node.value.value
    return found


_C = _constants()
BLOCK_SIZE = _C["BLOCK_SIZE"]
BLOCKS_PER_SM = _C["BLOCKS_PER_SM"]
ROW_BLOCKS_PER_SM = _C["ROW_BLOCKS_PER_SM"]


def elementwise_blocks(n: int) -> int:
    """Grid size of a grid-stride elementwise launch over ``n`` elements."""
    return min(-(-n // BLOCK_SIZE), BLOCKS_PER_SM * MULTIPROCESSORS)


def elementwise_capacity() -> int:
    """Elements covered by one pass of the largest elementwise grid."""
    return BLOCK_SIZE * BLOCKS_PER_SM * MULTIPROCESSORS


def softmax_blocks(rows: int) -> int:
    """Grid size of the one-warp-per-row softmax cross-entropy launch."""
    return min(-(-rows // (BLOCK_SIZE // 32)), ROW_BLOCKS_PER_SM * MULTIPROCESSORS)


def softmax_capacity() -> int:
    """Rows covered by one pass of the largest softmax grid."""
    return (BLOCK_SIZE // 32) * ROW_BLOCKS_PER_SM * MULTIPROCESSORS
