"""The table ``Sequential.summary`` prints: each layer's name and type, output shape and
parameter count, then the totals (Keras' layout)."""
from __future__ import annotations


def summary_lines(model, line_length=65):
    """The summary of ``model`` (shapes inferred), one str per line."""
    labels = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers]
    first = max([29, *(len(label) + 2 for label in labels)])  # long names widen, never shift
    line_length = max(line_length, first + 36)
    rule, widths = "_" * line_length, (first, 26, 10)
    lines = [f'Model: "{model.name}"', rule,
             _columns(("Layer (type)", "Output Shape", "Param #"), widths), "=" * line_length]
    trainable = non_trainable = 0
    for i, layer in enumerate(model.layers):
        shape = "(None, " + ", ".join(map(str, layer.output_shape)) + ")" if layer.output_shape else "?"
        params = layer.count_params() if layer.built else _declared_params(layer)
        fixed = layer.count_non_trainable_params()
        trainable, non_trainable = trainable + params, non_trainable + fixed
        lines.append(_columns((labels[i], shape, f"{params + fixed}"), widths))
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
