"""Merge layers: combine a list of tensors into one (Keras' names and arguments).

Forward and backward, for inputs x_0 .. x_{n-1} of one shape (dy = dL/dy):

- ``Add``:      y = sum_i x_i;            dx_i = dy
- ``Subtract``: y = x_0 - x_1 (two inputs); dx_0 = dy, dx_1 = -dy
- ``Multiply``: y = prod_i x_i;           dx_i = dy prod_{j != i} x_j
- ``Average``:  y = (1/n) sum_i x_i;      dx_i = dy / n
- ``Maximum`` / ``Minimum``: y = max_i x_i / min_i x_i; dx_i = dy where x_i is the first input
  equal to y, else 0
- ``Concatenate(axis=-1)``: y = [x_0 | x_1 | ...] along ``axis``; dx_i = dy's slice of x_i
- ``Dot(axes=-1)``: per-example vectors a, b of one length: y = sum_k a_k b_k (shape (1,));
  da = dy b, db = dy a

Every equation is a backend operation (:mod:`tensornet.backend.merge_ops`).

>>> merged = Add()([Dense(8)(a), Dense(8)(b)])
"""
from __future__ import annotations

from .base import Layer


class Merge(Layer):
    """Base class: ``merges = True`` (a list in, one tensor out); equal input shapes by default."""

    merges = True
    #: The number of inputs the layer takes (None: two or more).
    arity = None

    def compute_output_shape(self, input_shape):
        shapes = [tuple(shape) for shape in input_shape]
        self._check_count(shapes)
        if any(shape != shapes[0] for shape in shapes):
            raise ValueError(f"{type(self).__name__} layer {self.name!r} needs inputs of one shape; got "
                             + ", ".join(f"(None, {', '.join(map(str, s))})" for s in shapes))
        return shapes[0]

    def _check_count(self, shapes):
        if len(shapes) < 2 or (self.arity is not None and len(shapes) != self.arity):
            wanted = f"exactly {self.arity}" if self.arity else "at least 2"
            raise ValueError(f"{type(self).__name__} layer {self.name!r} takes {wanted} inputs; got {len(shapes)}")

    def forward(self, xs, training=False):
        self._xs = list(xs)
        self._y = self.merge(list(xs), self.workspace("y", xs[0].shape))
        return self._y

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        return [self.input_gradient(dy, i) for i in range(len(self._xs))]

    def merge(self, xs, out):
        raise NotImplementedError

    def input_gradient(self, dy, index):
        """dL/d(input ``index``) given dL/dy."""
        raise NotImplementedError


class Add(Merge):
    """y = sum_i x_i; dx_i = dy."""

    def merge(self, xs, out):
        return self.ops.merge_sum(xs, out=out)

    def input_gradient(self, dy, index):
        return dy


class Subtract(Merge):
    """y = x_0 - x_1; dx_0 = dy, dx_1 = -dy."""

    arity = 2

    def merge(self, xs, out):
        return self.ops.subtract_arrays(xs[0], xs[1], out=out)

    def input_gradient(self, dy, index):
        return dy if index == 0 else self.ops.scale(dy, -1.0, out=self.workspace("dx1", dy.shape))


class Multiply(Merge):
    """y = prod_i x_i; dx_i = dy prod_{j != i} x_j."""

    def merge(self, xs, out):
        return self.ops.merge_product(xs, out=out)

    def input_gradient(self, dy, index):
        return self.ops.backprop_merge_product(dy, self._xs, index, out=self.workspace(f"dx{index}", dy.shape))


class Average(Merge):
    """y = (1/n) sum_i x_i; dx_i = dy / n (one array shared by every input)."""

    def merge(self, xs, out):
        return self.ops.scale(self.ops.merge_sum(xs, out=out), 1.0 / len(xs), out=out)

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        share = self.ops.scale(dy, 1.0 / len(self._xs), out=self.workspace("dx", dy.shape))
        return [share] * len(self._xs)


class Maximum(Merge):
    """y = max_i x_i; dx_i = dy where x_i is the first input equal to y, else 0."""

    largest = True

    def merge(self, xs, out):
        return self.ops.merge_extreme(xs, self.largest, out=out)

    def input_gradient(self, dy, index):
        return self.ops.backprop_merge_extreme(dy, self._xs, self._y, index,
                                               out=self.workspace(f"dx{index}", dy.shape))


class Minimum(Maximum):
    """y = min_i x_i; dx_i = dy where x_i is the first input equal to y, else 0."""

    largest = False


class Concatenate(Merge):
    """y = the inputs joined along ``axis`` (of the batched tensors: -1 is the last, 0 the batch
    axis, which cannot be joined); dx_i = dy's slice of x_i's extent along that axis."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Concatenate axis must be an int; got {axis!r}")
        self.axis = axis

    def _batched_axis(self, rank):
        axis = self.axis + rank + 1 if self.axis < 0 else self.axis
        if not 1 <= axis <= rank:
            raise ValueError(f"Concatenate layer {self.name!r}: axis={self.axis} does not name a feature axis of "
                             f"inputs with {rank} axes per example (axis 0 is the batch)")
        return axis

    def compute_output_shape(self, input_shape):
        shapes = [tuple(shape) for shape in input_shape]
        self._check_count(shapes)
        rank = len(shapes[0])
        axis = self._batched_axis(rank) - 1
        if any(len(s) != rank or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:] for s in shapes):
            raise ValueError(f"Concatenate layer {self.name!r} (axis={self.axis}) needs inputs that agree on every "
                             "other axis; got " + ", ".join(f"(None, {', '.join(map(str, s))})" for s in shapes))
        return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]

    def forward(self, xs, training=False):
        self._xs = list(xs)
        shape = (xs[0].shape[0],) + tuple(self.output_shape)
        self._y = self.ops.concatenate(self._xs, self._batched_axis(len(self.output_shape)), out=self.workspace("y", shape))
        return self._y

    def backward(self, dy, through_activation=True):
        if not self.needs_input_grad:
            return None
        axis = self._batched_axis(len(self.output_shape))
        grads, start = [], 0
        for i, x in enumerate(self._xs):
            stop = start + x.shape[axis]
            grads.append(self.ops.slice_axis(dy, axis, start, stop, out=self.workspace(f"dx{i}", x.shape)))
            start = stop
        return grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(Merge):
    """The dot product of two per-example vectors: y = sum_k a_k b_k, shape (1,);
    da = dy b, db = dy a. ``axes`` is the vectors' axis (1 or -1, or a pair of them)."""

    arity = 2

    def __init__(self, axes=-1, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = tuple(axes) if isinstance(axes, (list, tuple)) else (axes, axes)
        if len(pair) != 2 or any(isinstance(a, bool) or a not in (1, -1) for a in pair):
            raise ValueError(f"Dot takes per-example vectors, axes=1 or -1 (or a pair of them); got axes={axes!r}")
        if normalize is not False:
            raise ValueError("Dot(normalize=True) (cosine similarity) is not supported; use normalize=False")
        self.axes = axes

    def compute_output_shape(self, input_shape):
        shapes = [tuple(shape) for shape in input_shape]
        self._check_count(shapes)
        if any(len(s) != 1 for s in shapes) or shapes[0] != shapes[1]:
            raise ValueError(f"Dot layer {self.name!r} needs two vectors of one length per example; got "
                             + ", ".join(f"(None, {', '.join(map(str, s))})" for s in shapes))
        return (1,)

    def forward(self, xs, training=False):
        self._xs = list(xs)
        self._y = self.ops.row_dot(xs[0], xs[1], out=self.workspace("y", (xs[0].shape[0], 1)))
        return self._y

    def input_gradient(self, dy, index):
        other = self._xs[1 - index]
        return self.ops.multiply(dy, other, out=self.workspace(f"dx{index}", other.shape))

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes) if isinstance(self.axes, tuple) else self.axes}
