"""Checks on a model file's header and arrays before anything is built from them, so that a
file whose checksum is valid but whose header does not describe a consistent model is refused
with a ValueError naming the file, before any array of the size it implies is allocated."""
from __future__ import annotations

import contextlib
import copy
import os

import numpy

from ..backend import get_backend
from ..nn.layers.base import check_shape
from .configs import layer_classes, layer_from_config
from .graph_files import planned_graph_weights


class LoadError(ValueError):
    """A load failure whose message is already complete (passed through :func:`malformed_file`)."""


@contextlib.contextmanager
def malformed_file(path):
    """Turn any failure while interpreting a header that passed its checksum (a missing key, a value
    of the wrong type, a config a constructor rejects...) into a ValueError naming the file."""
    try:
        yield
    except (LoadError, MemoryError):
        raise
    except Exception as exc:
        detail = str(exc) if type(exc) is ValueError else f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{os.fspath(path)!r}: malformed model file: {detail}") from exc


def require(condition, problem):
    if not condition:
        raise ValueError(problem)


def _planned_weights(layers, input_shape):
    """What building ``layers`` for ``input_shape`` would allocate, worked out on shallow copies
    of the layers (``compute_output_shape`` and ``build_weights`` only), allocating nothing of that
    size: ``(weights, states)``, ``weights`` a list of (layer index, name, shape) in
    ``get_weights`` order and ``states`` each layer's count of non-trainable values."""
    ops = get_backend()
    shape = check_shape(input_shape, "input_shape")
    weights, states = [], []
    for index, layer in enumerate(layers):
        probe = copy.copy(layer)
        probe.ops, probe.input_shape, probe._specs = ops, shape, []
        output = check_shape(tuple(probe.compute_output_shape(shape)), f"output shape of layer {index}")
        probe.build_weights(shape)
        weights += [(index, name, tuple(weight_shape)) for name, weight_shape, _ in probe.weight_specs()]
        states.append(probe.count_non_trainable_params())
        shape = output
    return weights, states


def _check_stored_weights(header, arrays, planned, states):
    """The file stores exactly the weights (and at least the layer state) ``planned`` by
    :func:`_planned_weights`: one floating-point array of the planned shape per weight."""
    slots = header.get("weights")
    require(isinstance(slots, list) and len(slots) == len(planned),
             f"the architecture has {len(planned)} weights, the header lists "
             f"{len(slots) if isinstance(slots, list) else repr(slots)}")
    for i, ((index, name, shape), slot) in enumerate(zip(planned, slots)):
        stored = arrays.get(f"weights/{i}")
        require(stored is not None, f"weight {i} (layer {index} {name!r}) is missing")
        require(slot == [index, name], f"weight {i} is listed as {slot!r}, the architecture has [{index}, {name!r}]")
        require(stored.dtype.kind == "f", f"weight {i} (layer {index} {name!r}) has dtype {stored.dtype}, "
                                           "not a floating-point type")
        require(tuple(stored.shape) == shape, f"layer {index} weight {name!r} has shape {shape} in the "
                                               f"architecture, {tuple(stored.shape)} in the file")
    for index, count in enumerate(states):
        held = sum(a.size for key, a in arrays.items() if key.startswith(f"state/{index}/"))
        require(count <= held, f"layer {index} keeps {count} values of state, the file stores {held}")


def _check_rng_state(state):
    name = state["bit_generator"]
    cls = getattr(numpy.random, name, None) if isinstance(name, str) else None
    require(isinstance(cls, type) and issubclass(cls, numpy.random.BitGenerator)
             and cls is not numpy.random.BitGenerator, f"unknown random bit generator {name!r}")


def check_model_archive(path, header, arrays, custom_objects=None, compile=True):
    """Check read_archive's ``(header, arrays)`` before :func:`model_from_archive` builds anything:
    the kind, the custom objects it needs, the random generators' names, and, where loading builds
    the model, that the architecture's weights are exactly those stored (so a header that implies
    more parameters than the file holds is refused before allocating them). Raise a ValueError
    naming the file; a structural problem (missing key, wrong type) raises inside
    :func:`malformed_file`, which names it too."""
    path = os.fspath(path)
    if header.get("kind") != "model":
        raise LoadError(f"{path!r} holds weights only; build the model and call load_weights")
    spec = header["model"]
    require(spec["class"] in ("Sequential", "Model"), f"unknown model class {spec['class']!r}")
    require(isinstance(spec["layers"], list), f"the model's layers are {spec['layers']!r}, not a list")
    known, custom = layer_classes(), custom_objects or {}
    for item in spec["layers"]:
        require(isinstance(item["class"], str), f"layer class {item['class']!r} is not a name")
        if item["class"] not in custom and item["class"] not in known:
            raise LoadError(f"{path!r}: unknown layer class {item['class']!r}; pass it in "
                             f"custom_objects={{'{item['class']}': cls}}")
    compiled = header.get("compile") if compile else None
    optimizer_spec = header.get("optimizer")
    if compiled is not None and optimizer_spec is not None:
        schedule = optimizer_spec["schedule"]
        if schedule["name"] == "LambdaSchedule":
            fn = schedule.get("fn")
            require(isinstance(fn, str), f"the learning-rate schedule {schedule!r} names no function")
            if custom.get(fn) is None:
                raise LoadError(f"{path!r}: the model's learning rate is the function {fn!r}, which a file cannot "
                                 f"hold: pass it as load_model(path, custom_objects={{{fn!r}: fn}})")
    for name, array in arrays.items():
        require(array.dtype.kind == "f" or not name.startswith(("weights/", "state/", "optimizer/")),
                 f"array {name!r} has dtype {array.dtype}, not a floating-point type")
    rng = header.get("rng", {})
    for state in [rng.get("model"), *rng.get("layers", {}).values()]:
        if state is not None:
            _check_rng_state(state)
    layers = [layer_from_config(item["class"], item["config"], custom_objects) for item in spec["layers"]]
    if spec["class"] == "Model":  # a graph model is built at construction, for its inputs' shapes
        _check_graph_spec(spec["graph"], len(layers))
        _check_stored_weights(header, arrays, *planned_graph_weights(spec["graph"], layers))
        return
    # the shape model_from_archive builds for: compile builds a model whose first layer knows its
    # input shape; otherwise a model saved built is built for its saved input shape
    input_shape = layers[0].input_shape if compiled is not None and layers else None
    if input_shape is None and spec["built"]:
        input_shape = spec["input_shape"]
    if input_shape is not None:
        _check_stored_weights(header, arrays, *_planned_weights(layers, input_shape))


def _check_graph_spec(graph, count):
    """Every layer index in range and every slot read after it is written (no arrays involved)."""
    written = set()
    for layer_index, slot in graph["inputs"]:
        require(isinstance(layer_index, int) and 0 <= layer_index < count, f"graph input layer {layer_index!r} "
                f"is not one of the {count} layers")
        written.add(slot)
    for layer_index, inputs, output in graph["steps"]:
        require(isinstance(layer_index, int) and 0 <= layer_index < count, f"graph step layer {layer_index!r} "
                f"is not one of the {count} layers")
        require(isinstance(inputs, list) and inputs and all(slot in written for slot in inputs),
                f"graph step of layer {layer_index} reads {inputs!r} before they are made")
        written.add(output)
    require(all(slot in written for slot in graph["outputs"]), f"graph outputs {graph['outputs']!r} are not made")


def check_weights_fit(path, model, header, arrays):
    """Every stored weight and layer state fits ``model`` (count, shape, dtype) before any is set,
    so that a file that does not fit leaves the model untouched."""
    def fit(condition, problem):
        if not condition:
            raise LoadError(f"{os.fspath(path)!r} does not fit model {model.name!r}: {problem}")

    views = list(model.store.views())
    slots = header["weights"]
    require(isinstance(slots, list), f"the header's list of weights is {slots!r}")
    fit(len(slots) == len(views), f"the file holds {len(slots)} weights, the model has {len(views)}")
    for i, (layer, name, view, _) in enumerate(views):
        stored = arrays.get(f"weights/{i}")
        require(stored is not None, f"weight {i} is missing")
        fit(stored.dtype.kind == "f", f"weight {i} has dtype {stored.dtype}, not a floating-point type")
        fit(tuple(stored.shape) == tuple(view.shape), f"{layer.name}/{name} has shape {tuple(view.shape)}, "
                                                      f"the file's weight {i} {tuple(stored.shape)}")
    for index, layer in enumerate(model.layers):
        prefix = f"state/{index}/"
        state = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
        if state:
            current = layer.get_state_arrays()
            fit(set(state) == set(current), f"layer {layer.name!r} keeps state {sorted(current)}, the file "
                                            f"holds {sorted(state)}")
            for key, value in state.items():
                fit(value.dtype.kind == "f" and value.shape == current[key].shape,
                    f"layer {layer.name!r} state {key!r} is {current[key].dtype} {current[key].shape}, "
                    f"the file's {value.dtype} {value.shape}")
