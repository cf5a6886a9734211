"""A graph model's topology in a model file: plain JSON, rebuilt by calling the layers again.

``header["model"]["graph"]`` holds, with layers addressed by their index in ``layers`` and
tensors by slot number (the engine's):

- ``inputs``: ``[[layer index, slot], ...]`` of the Input layers, in input order;
- ``steps``: ``[[layer index, [input slots], output slot], ...]`` in topological order;
- ``outputs``: the output slots, in output order;
- ``input_names`` / ``output_names`` and ``structure`` (``["list", "dict"]``: how the inputs
  and outputs were given: one tensor, a list or a dict).

Loading creates the layers from their configs and calls them on symbolic tensors in the saved
order, so the graph is checked again exactly as when it was first built.
"""
from __future__ import annotations

import copy

from ..backend import get_backend
from ..nn.layers.input_layer import InputLayer, input_tensor


def graph_spec(model):
    """The ``graph`` entry of ``model``'s header."""
    topology = model.topology
    index = {id(layer): i for i, layer in enumerate(model.layers)}
    return {"inputs": [[index[id(topology.tensors[slot].layer)], slot] for slot in topology.input_slots],
            "steps": [[index[id(step.layer)], list(step.inputs), step.output] for step in topology.steps],
            "outputs": list(topology.output_slots), "input_names": list(model.input_names),
            "output_names": list(model.output_names), "structure": list(model._structure)}


def rebuild_graph(spec, layers):
    """``(inputs, outputs)`` for ``Model(...)``: ``layers`` (made from the saved configs) called
    on symbolic tensors as ``spec`` says, arranged as the saved model took them."""
    tensors = {}
    for layer_index, slot in spec["inputs"]:
        layer = layers[int(layer_index)]
        if not isinstance(layer, InputLayer):
            raise ValueError(f"graph input {slot} is layer {layer_index} ({type(layer).__name__}), not an InputLayer")
        tensors[int(slot)] = input_tensor(layer)
    for layer_index, inputs, output in spec["steps"]:
        layer = layers[int(layer_index)]
        sources = [tensors[int(slot)] for slot in inputs]
        tensors[int(output)] = layer(sources if layer.merges else sources[0])
    inputs = [tensors[int(slot)] for _, slot in spec["inputs"]]
    outputs = [tensors[int(slot)] for slot in spec["outputs"]]
    in_kind, out_kind = spec["structure"]
    return _arrange(inputs, spec["input_names"], in_kind), _arrange(outputs, spec["output_names"], out_kind)


def _arrange(tensors, names, kind):
    if kind == "dict":
        return dict(zip(names, tensors))
    return tensors if kind == "list" else tensors[0]


def planned_graph_weights(spec, layers):
    """``(weights, states)`` as :func:`~tensornet.models.archive_checks._planned_weights` plans a
    chain's, for a saved graph: each layer's weights for the shapes of its calls, worked out on
    shallow copies (nothing of the weights' size is allocated)."""
    rebuild_graph(spec, layers)  # fixes every layer's call shapes (symbolic: no arrays)
    ops = get_backend()
    weights, states = [], []
    for index, layer in enumerate(layers):
        probe = copy.copy(layer)
        probe.ops, probe._specs = ops, []
        probe.build_weights(layer.node_input_shapes)
        weights += [(index, name, tuple(shape)) for name, shape, _ in probe.weight_specs()]
        states.append(probe.count_non_trainable_params())
    return weights, states
