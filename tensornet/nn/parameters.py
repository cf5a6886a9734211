"""Flat parameter storage: all of a model's weights in one buffer, its gradients in another.

Each layer's weights and gradients are views into the two buffers, so an optimizer step is
one vectorised pass (one kernel launch on a GPU) over every parameter, and an all-reduce of
the gradients is one call. Views start at offsets aligned to ``ALIGN`` elements (64 bytes in
float32); the padding between them is zero in both buffers and stays zero under every update.
"""
from __future__ import annotations

import math

ALIGN = 16


class ParameterStore:
    """One contiguous parameter buffer and one gradient buffer per dtype.

    ``slots`` lists ``(layer, name, shape, dtype, offset)``; ``groups`` maps a dtype name to
    ``(params, grads)``, the flat buffers.
    """

    def __init__(self, ops, layers):
        self.ops = ops
        self.slots = []
        sizes = {}
        for layer in layers:
            for name, shape, dtype in layer.weight_specs():
                offset = sizes.get(dtype, 0)
                self.slots.append((layer, name, tuple(shape), dtype, offset))
                size = math.prod(shape)
                sizes[dtype] = offset + -(-size // ALIGN) * ALIGN
        self.groups = {dtype: (ops.lasting_zeros((size,), dtype), ops.lasting_zeros((size,), dtype))
                       for dtype, size in sizes.items()}
        for layer, name, shape, dtype, offset in self.slots:
            params, grads = self.groups[dtype]
            size = math.prod(shape)
            layer.attach_weight(name, params[offset:offset + size].reshape(shape),
                                grads[offset:offset + size].reshape(shape))

    @property
    def size(self) -> int:
        """Number of parameters (padding excluded)."""
        return sum(math.prod(shape) for _, _, shape, _, _ in self.slots)

    def flat(self):
        """``(params, grads)``: the flat buffers of the only dtype (a ValueError with several)."""
        if len(self.groups) != 1:
            raise ValueError(f"the parameters have {len(self.groups)} dtypes ({', '.join(self.groups)}), not one")
        return next(iter(self.groups.values()))

    def offset(self, layer, name):
        """Where weight ``name`` of ``layer`` starts in its dtype's flat buffer (None: no such weight)."""
        for owner, weight, _, _, offset in self.slots:
            if owner is layer and weight == name:
                return offset
        return None

    def views(self):
        """(layer, name, weight view, gradient view) for every weight, in layer order."""
        for layer, name, *_ in self.slots:
            yield layer, name, layer.weights[name], layer.gradients[name]
