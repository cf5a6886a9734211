"""Symbolic tensors: what ``Input(...)`` returns and calling a layer on one records.

A :class:`SymbolicTensor` stands for a batch that does not exist yet: it knows its per-example
``shape``, its ``dtype`` and the :class:`Node` that makes it. A :class:`Node` is one call of a
layer: the layer, the tensors it was called on (``inbound``) and the tensor it returned. A model
(:class:`tensornet.models.Model`) walks the nodes back from its outputs to its inputs, sorts them
and runs them; a layer called on several tensors has one node per call and one set of weights.
"""
from __future__ import annotations


class SymbolicTensor:
    """The output of ``node``: per-example ``shape`` (no batch axis) and ``dtype``."""

    __slots__ = ("shape", "dtype", "node")

    def __init__(self, shape, dtype, node):
        self.shape, self.dtype, self.node = tuple(shape), dtype, node

    @property
    def layer(self):
        """The layer whose call made this tensor."""
        return self.node.layer

    @property
    def name(self):
        """``<layer name>`` for a layer's first call, ``<layer name>_<k>`` for its k-th later one."""
        return self.node.layer.name if self.node.index == 0 else f"{self.node.layer.name}_{self.node.index}"

    def __repr__(self):
        return f"<SymbolicTensor {self.name!r} shape=(None, {', '.join(map(str, self.shape))}) dtype={self.dtype}>"


class Node:
    """One call of ``layer`` on ``inbound`` (a list of :class:`SymbolicTensor`; empty for an
    Input) returning ``output``; ``index`` counts the layer's calls from 0."""

    __slots__ = ("layer", "inbound", "output", "index")

    def __init__(self, layer, inbound, index):
        self.layer, self.inbound, self.index = layer, list(inbound), index
        self.output = None

    def __repr__(self):
        sources = ", ".join(t.name for t in self.inbound)
        return f"<Node {self.layer.name}[{self.index}]({sources})>"


def is_symbolic(value) -> bool:
    """Whether ``value`` is a symbolic tensor or a non-empty list/tuple of them."""
    if isinstance(value, SymbolicTensor):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, SymbolicTensor) for v in value)


def call_symbolic(layer, inputs):
    """Record ``layer(inputs)`` as a new node and return its output tensor.

    The output shape comes from ``layer.compute_output_shape``, so a shape the layer cannot take
    is a ValueError here, naming the layer and the shapes. Every call of one layer must see the
    same input shapes (they share one set of weights)."""
    merges = getattr(layer, "merges", False)
    if merges:
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2 or \
                not all(isinstance(t, SymbolicTensor) for t in inputs):
            raise TypeError(f"merge layer {layer.name!r} takes a list of at least two tensors; got {inputs!r}")
        inbound = list(inputs)
        shapes = [t.shape for t in inbound]
    else:
        if not isinstance(inputs, SymbolicTensor):
            raise TypeError(f"layer {layer.name!r} takes one tensor; got a list of {len(inputs)} (merge them first, "
                            "e.g. with Concatenate()([...]))")
        inbound = [inputs]
        shapes = inbound[0].shape
    declared = layer.node_input_shapes
    if declared is None and layer.input_shape is not None and not merges:
        declared = tuple(layer.input_shape)
    if declared is not None and _as_key(declared) != _as_key(shapes):
        raise ValueError(f"shape mismatch: layer {layer.name!r} was built for inputs of shape {_show(declared)} "
                         f"and is now called on {_show(shapes)} (a shared layer takes the same shapes at every call)")
    try:
        output_shape = tuple(layer.compute_output_shape(shapes))
    except ValueError as exc:
        raise ValueError(f"shape mismatch at layer {layer.name!r} ({type(layer).__name__}) called on "
                         f"{_show(shapes)}: {exc}") from None
    node = Node(layer, inbound, len(layer.inbound_nodes))
    node.output = SymbolicTensor(output_shape, layer.dtype or inbound[0].dtype, node)
    layer.inbound_nodes.append(node)
    layer.node_input_shapes = shapes
    return node.output


def _as_key(shapes):
    return tuple(tuple(s) for s in shapes) if shapes and isinstance(shapes[0], (tuple, list)) else tuple(shapes)


def _show(shapes):
    if shapes and isinstance(shapes[0], (tuple, list)):
        return "[" + ", ".join(_show(s) for s in shapes) + "]"
    return "(None, " + ", ".join(map(str, shapes)) + ")"
