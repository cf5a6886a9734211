"""The table ``summary`` prints: each layer's name and type, output shape and parameter count
(and, in a graph model, the tensors it is called on), then the totals (Keras' layout); and the
graph in Graphviz's DOT language."""
from __future__ import annotations


def connections(model):
    """``{id(layer): "a[0][0], b[1][0]"}``: the tensors each layer of a graph model is called on,
    in Keras' ``layer[node][tensor]`` notation (every call of a shared layer listed); {} for a
    model with no graph."""
    topology = getattr(model, "topology", None)
    if topology is None:
        return {}
    result = {}
    for step in topology.steps:
        names = [f"{t.layer.name}[{t.node.index}][0]" for t in (topology.tensors[s] for s in step.inputs)]
        result.setdefault(id(step.layer), []).extend(names)
    return {key: ", ".join(value) for key, value in result.items()}


def summary_lines(model, line_length=None):
    """The summary of ``model`` (shapes inferred), one str per line; a graph model has a
    "Connected to" column, and each layer (shared ones too) one row."""
    labels = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers]
    first = max([29, *(len(label) + 2 for label in labels)])  # long names widen, never shift
    inbound = connections(model)
    graph = getattr(model, "topology", None) is not None
    line_length = max(line_length or (98 if graph else 65), first + (62 if graph else 36))
    rule, widths = "_" * line_length, (first, 26, 10, 24)
    header = ("Layer (type)", "Output Shape", "Param #") + (("Connected to",) if graph else ())
    lines = [f'Model: "{model.name}"', rule, _columns(header, widths), "=" * line_length]
    trainable = non_trainable = 0
    for i, layer in enumerate(model.layers):
        shape = "(None, " + ", ".join(map(str, layer.output_shape)) + ")" if layer.output_shape else "?"
        params = layer.count_params() if layer.built else _declared_params(layer)
        fixed = layer.count_non_trainable_params()
        trainable, non_trainable = trainable + params, non_trainable + fixed
        row = (labels[i], shape, f"{params + fixed}") + ((inbound.get(id(layer), ""),) if graph else ())
        lines.append(_columns(row, widths))
        lines.append("=" * line_length if i == len(model.layers) - 1 else rule)
    lines += [f"Total params: {trainable + non_trainable:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {non_trainable:,}", rule]
    return lines


def _declared_params(layer):
    if layer.input_shape is None:
        return 0
    probe = type(layer).__new__(type(layer))
    probe.__dict__.update(layer.__dict__)
    probe._specs = []
    probe.build_weights(layer.input_shape)
    return probe.count_params()


def _columns(values, widths):
    return "".join(" " + str(v).ljust(w) for v, w in zip(values, widths)).rstrip()


def dot_lines(model):
    """``model`` as a DOT digraph, one str per line: a node per layer, an edge per call input."""
    lines = [f'digraph "{_quote(model.name)}" {{', "  rankdir=TB;", "  node [shape=record];"]
    index = {id(layer): i for i, layer in enumerate(model.layers)}
    for i, layer in enumerate(model.layers):
        shape = "(None, " + ", ".join(map(str, layer.output_shape)) + ")" if layer.output_shape else "?"
        lines.append(f'  n{i} [label="{{{_quote(layer.name)} | {type(layer).__name__} | {shape}}}"];')
    topology = getattr(model, "topology", None)
    if topology is not None:
        for step in topology.steps:
            for slot in step.inputs:
                lines.append(f"  n{index[id(topology.tensors[slot].layer)]} -> n{index[id(step.layer)]};")
    else:
        lines += [f"  n{i} -> n{i + 1};" for i in range(len(model.layers) - 1)]
    return lines + ["}"]


def _quote(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("{", "\\{").replace("}", "\\}")
