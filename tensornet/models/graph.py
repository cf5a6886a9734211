"""From symbolic tensors to a model's topology: the checked, topologically sorted layer calls.

:func:`trace` walks back from the outputs through the nodes that made them (depth first, so the
order is topological: every call after the calls it reads from) and checks the graph as it goes.
Each problem is a ValueError naming the layer and the tensors:

- an output that depends on an ``Input`` not among the model's inputs (disconnected output);
- an input that no output depends on (unused input);
- a cycle (a tensor that depends on itself);
- two different layers with one name (``get_layer`` and saving address layers by name);
- inputs that are not ``Input(...)`` tensors, or an input listed twice.

Shapes are checked earlier, when each layer is called on symbolic tensors.
"""
from __future__ import annotations

from ..nn.layers.input_layer import InputLayer
from ..nn.layers.symbolic import SymbolicTensor
from .engine import Step


def flatten_tensors(value, argument):
    """``(tensors, names)``: one tensor, a list of them, or a dict keyed by name (``names`` is
    None unless a dict was given)."""
    if isinstance(value, dict):
        names, tensors = list(value), list(value.values())
    elif isinstance(value, (list, tuple)):
        names, tensors = None, list(value)
    else:
        names, tensors = None, [value]
    if not tensors:
        raise ValueError(f"Model({argument}=...) needs at least one tensor")
    for tensor in tensors:
        if not isinstance(tensor, SymbolicTensor):
            raise TypeError(f"Model({argument}=...) takes symbolic tensors (from Input(...) or a layer called on "
                            f"one); got {type(tensor).__name__}")
    return tensors, names


class Topology:
    """The traced graph: ``layers`` (each once, in order of first call, Input layers first),
    ``steps`` (:class:`~tensornet.models.engine.Step`, sorted; Input layers have none),
    ``input_slots`` and ``output_slots`` (slot numbers of the model's inputs and outputs) and
    ``tensors`` (slot -> :class:`SymbolicTensor`)."""

    def __init__(self, inputs, outputs):
        for tensor in inputs:
            if not isinstance(tensor.layer, InputLayer):
                raise ValueError(f"model inputs must be Input(...) tensors; {tensor.name!r} is the output of layer "
                                 f"{tensor.layer.name!r} ({type(tensor.layer).__name__})")
        if len({id(t) for t in inputs}) != len(inputs):
            raise ValueError("an input is listed twice in Model(inputs=...)")
        self.tensors, slots, order = {}, {}, []
        state = {}  # id(node) -> "active" while on the depth-first path, "done" after
        allowed = {id(t.node) for t in inputs}
        for output in outputs:
            self._visit(output, state, order, allowed, output)
        for tensor in inputs:
            slots[id(tensor)] = len(slots)
            self.tensors[slots[id(tensor)]] = tensor
        used = {id(node) for node in order}
        for tensor in inputs:
            if id(tensor.node) not in used:
                raise ValueError(f"input {tensor.layer.name!r} is not used: no output of the model depends on it "
                                 "(remove it from inputs=, or connect it)")
        self.steps, self.layers = [], [t.layer for t in inputs]
        for node in order:
            if not node.inbound:
                continue
            slot = slots.setdefault(id(node.output), len(slots))
            self.tensors[slot] = node.output
            self.steps.append(Step(node.layer, [slots[id(t)] for t in node.inbound], slot))
            if not any(layer is node.layer for layer in self.layers):
                self.layers.append(node.layer)
        self.input_slots = [slots[id(t)] for t in inputs]
        self.output_slots = [slots[id(t)] for t in outputs]
        names = {}
        for layer in self.layers:
            other = names.setdefault(layer.name, layer)
            if other is not layer:
                raise ValueError(f"two layers of the model are named {layer.name!r} ({type(other).__name__} and "
                                 f"{type(layer).__name__}): layer names must be unique")

    def _visit(self, tensor, state, order, allowed, output):
        """Depth-first, iteratively: append every node ``tensor`` depends on, then its own."""
        stack = [(tensor.node, False)]
        while stack:
            node, expanded = stack.pop()
            key = id(node)
            if expanded:
                state[key] = "done"
                order.append(node)
                continue
            if state.get(key) == "done":
                continue
            if state.get(key) == "active":
                raise ValueError(f"the graph has a cycle through layer {node.layer.name!r}: its output depends on "
                                 "itself")
            if not node.inbound and key not in allowed:
                raise ValueError(f"disconnected output {output.name!r}: it depends on input {node.layer.name!r}, "
                                 "which is not among the model's inputs (add it to inputs=)")
            state[key] = "active"
            stack.append((node, True))
            for source in reversed(node.inbound):
                if state.get(id(source.node)) == "active":
                    raise ValueError(f"the graph has a cycle through layer {source.layer.name!r}: its output "
                                     "depends on itself")
                stack.append((source.node, False))
