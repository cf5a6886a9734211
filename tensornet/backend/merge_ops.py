"""Operations of the graph models' merge layers, written once against ``self.xp``.

A merge combines several tensors of one shape (or, for concatenation, shapes that differ along
one axis) into one; its backward hands each input its share of dL/dy:

- sum ``y = sum_i x_i``: dx_i = dy; difference ``y = x_0 - x_1``: dx_0 = dy, dx_1 = -dy;
- product ``y = prod_i x_i``: dx_i = dy * prod_{j != i} x_j; mean: dx_i = dy / n;
- extreme ``y = max_i x_i`` (or min): dx_i = dy where x_i is the first input equal to y, else 0;
- concatenation along ``axis``: dx_i is dy's slice of x_i's extent along that axis;
- row dot product ``y_n = sum_k a_nk b_nk`` (shape (N, 1)): da = dy b, db = dy a.
"""
from __future__ import annotations


class MergeOps:
    """Merges, their backward pieces, and the two array updates a graph's backward pass needs
    (accumulating a gradient that reaches a tensor from several consumers, scaling by a loss
    weight)."""

    def add_arrays(self, a, b, out=None):
        """Element-wise a + b (broadcasting as ``xp.add``)."""
        return self.xp.add(a, b, out=out)

    def subtract_arrays(self, a, b, out=None):
        """Element-wise a - b."""
        return self.xp.subtract(a, b, out=out)

    def scale(self, x, factor, out=None):
        """``factor * x`` with ``factor`` a Python number, in ``x``'s dtype."""
        return self.xp.multiply(x, x.dtype.type(factor), out=out)

    def merge_sum(self, xs, out=None):
        """``sum_i xs[i]``, added left to right."""
        xp = self.xp
        out = xp.add(xs[0], xs[1], out=out)
        for x in xs[2:]:
            xp.add(out, x, out=out)
        return out

    def merge_product(self, xs, out=None):
        """``prod_i xs[i]``, multiplied left to right."""
        xp = self.xp
        out = xp.multiply(xs[0], xs[1], out=out)
        for x in xs[2:]:
            xp.multiply(out, x, out=out)
        return out

    def backprop_merge_product(self, dy, xs, index, out=None):
        """``dy * prod_{j != index} xs[j]``: the product's gradient with respect to ``xs[index]``."""
        xp = self.xp
        out = xp.multiply(dy, xs[1 if index == 0 else 0], out=out)
        for j, x in enumerate(xs):
            if j != index and j != (1 if index == 0 else 0):
                xp.multiply(out, x, out=out)
        return out

    def merge_extreme(self, xs, largest, out=None):
        """Element-wise ``max_i xs[i]`` (``largest``) or ``min_i xs[i]``."""
        xp = self.xp
        pick = xp.maximum if largest else xp.minimum
        out = pick(xs[0], xs[1], out=out)
        for x in xs[2:]:
            pick(out, x, out=out)
        return out

    def backprop_merge_extreme(self, dy, xs, y, index, out=None):
        """dL/d(xs[index]) of :meth:`merge_extreme`: ``dy`` where ``xs[index]`` is the first
        input equal to the result ``y``, 0 elsewhere (a tie goes to the first input)."""
        xp = self.xp
        chosen = xs[index] == y
        for x in xs[:index]:
            chosen &= x != y
        return xp.multiply(dy, chosen, out=out)

    def concatenate(self, xs, axis, out=None):
        """``xs`` joined along ``axis`` (an axis of the batched arrays, batch axis 0)."""
        return self.xp.concatenate(xs, axis=axis, out=out)

    def slice_axis(self, x, axis, start, stop, out=None):
        """A contiguous copy of ``x[..., start:stop, ...]`` along ``axis`` (concatenation's backward)."""
        part = x[(slice(None),) * axis + (slice(start, stop),)]
        if out is None:
            return self.xp.ascontiguousarray(part)
        out[...] = part
        return out

    def row_dot(self, a, b, out=None):
        """``y_n = sum_k a_nk b_nk`` for a, b of shape (N, K): shape (N, 1)."""
        return self.xp.sum(self.xp.multiply(a, b), axis=-1, keepdims=True, out=out)
