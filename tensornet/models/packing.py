"""Several arrays per example as one table: how a model with several inputs or outputs feeds the
one batch loop.

The training loop shuffles, batches, shards and checkpoints one input array and one target
array. A model with k inputs of per-example shapes s_1 .. s_k hands it one table of shape
(N, prod(s_1) + ... + prod(s_k)): example n's row is the concatenation of every input's example
n, flattened. Each batch is cut back into the k arrays (a copy of each part, reshaped) before the
forward pass. Targets travel the same way (integer labels as one column of the model's float
dtype: exact for class counts up to 2^24 in float32). With one array nothing is packed.
"""
from __future__ import annotations

import math


class Packing:
    """The layout of ``shapes`` (per-example shapes; () for integer labels) in one table;
    ``labels[i]`` marks a part to hand back as int64 labels."""

    def __init__(self, shapes, labels=None):
        self.shapes = [tuple(shape) for shape in shapes]
        self.labels = list(labels or [False] * len(self.shapes))
        self.widths = [max(math.prod(shape), 1) for shape in self.shapes]
        self.starts = [sum(self.widths[:i]) for i in range(len(self.widths))]

    @property
    def single(self) -> bool:
        return len(self.shapes) == 1

    @property
    def shape(self):
        """The per-example shape of the table (the only part's shape when there is one)."""
        return self.shapes[0] if self.single else (sum(self.widths),)

    def pack(self, ops, arrays, dtype):
        """One table (N, width) from the per-part arrays (already checked, one length)."""
        if self.single:
            return arrays[0]
        n = arrays[0].shape[0]
        parts = [ops.asarray(a, dtype=dtype).reshape(n, -1) for a in arrays]
        return ops.concatenate(parts, 1, out=ops.empty((n, sum(self.widths)), dtype))

    def unpack(self, ops, table, buffer):
        """The per-part arrays of a batch ``table``; ``buffer(tag, shape)`` gives reusable space."""
        if self.single:
            return [table]
        n = table.shape[0]
        parts = []
        for i, (shape, start, width) in enumerate(zip(self.shapes, self.starts, self.widths)):
            part = ops.slice_axis(table, 1, start, start + width, out=buffer(f"part{i}", (n, width)))
            part = part.reshape((n,) + shape)
            parts.append(part.astype("int64") if self.labels[i] else part)
        return parts
