"""Saving and loading models: a format that executes nothing on load.

A saved model is one ``.npz`` file (a zip of ``.npy`` arrays, read back by the bounded reader
:func:`tensornet._npz.read_npz`, which never unpickles and checks every declared size against
the file before allocating) holding:

- ``header``: a JSON document (as uint8 bytes) with the architecture (each layer's class and
  config), the compile settings (loss, metrics, jit_compile), the optimizer's class, hyper-parameters,
  learning-rate schedule, step count, learning-rate multiplier and scalar state, the random
  generators' states (the model's, and any layer's own), the epochs completed, the history
  so far, and an index of every array (name, dtype, shape);
- ``weights/<i>``: every weight in ``get_weights`` order;
- ``optimizer/<dtype>/<name>``: every optimizer state buffer (velocities, moments, ...);
- ``state/<layer index>/<name>``: layers' non-trainable state (e.g. running statistics);
- ``checksum``: SHA-256 (hex, as uint8 bytes) of the header and of every array's name, dtype,
  shape and bytes, verified on load.

The file is written atomically: to a temporary file in the same directory, flushed and
fsync'ed, then renamed over the target (and the directory fsync'ed), so a crash leaves either
the old file or the new one, never a torn one.

Everything that decides the next training step is saved, so a loaded model continues
training bit for bit like the saved one (dropout masks and shuffling included): fit the
loaded model with ``initial_epoch=model.epochs_completed``.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import json
import os

import numpy

from ._files import atomic_write
from ._npz import NpzFormatError, read_npz

FORMAT = "tensornet.model"
VERSION = 1

_SKIPPED_OPTIMIZER_ARGS = {"self", "lr", "learning_rate", "decay", "kwargs"}
_BASE_OPTIMIZER_ARGS = ("clipnorm", "clipvalue", "global_clipnorm")


# ---------------------------------------------------------------------- file format
def _checksum(header_bytes: bytes, arrays: dict) -> str:
    digest = hashlib.sha256()
    digest.update(header_bytes)
    for name in sorted(arrays):
        array = numpy.ascontiguousarray(arrays[name])
        digest.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_archive(path, header: dict, arrays: dict):
    """Write ``header`` (JSON-able) and ``arrays`` (name -> NumPy array) to ``path`` atomically."""
    path = os.fspath(path)
    arrays = {name: numpy.ascontiguousarray(value) for name, value in arrays.items()}
    header = dict(header, arrays={name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays.items()})
    header_bytes = json.dumps(header, sort_keys=True).encode()
    checksum = _checksum(header_bytes, arrays)
    members = {"header": numpy.frombuffer(header_bytes, dtype=numpy.uint8),
               "checksum": numpy.frombuffer(checksum.encode(), dtype=numpy.uint8), **arrays}
    with atomic_write(path) as handle:
        numpy.savez(handle, **members)


def read_archive(path):
    """(header, arrays) from a file written by :func:`write_archive`, checksum verified.

    The arrays are read with :func:`tensornet._npz.read_npz`, which checks every size the file
    declares against what it holds before allocating, so a damaged or hostile file raises a
    ``ValueError`` naming it (never allocates without bound). The header must be a JSON object
    of this format and version whose index of arrays matches the arrays exactly."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no saved model at {path!r}")
    try:
        members = read_npz(path)
    except NpzFormatError as exc:
        raise ValueError(f"{path!r} is damaged: {exc.problem}") from None
    except OSError as exc:  # unreadable: a directory, no permission...
        problem = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{path!r} is not a tensornet model file (or is damaged): {problem}") from None
    if "header" not in members or "checksum" not in members:
        raise ValueError(f"{path!r} is not a tensornet model file: it has no header or no checksum")
    header_bytes = members.pop("header").tobytes()
    stored = members.pop("checksum").tobytes().decode("ascii", "replace")
    actual = _checksum(header_bytes, members)
    if stored != actual:
        raise ValueError(f"{path!r} failed its checksum (stored {stored[:16]}..., computed {actual[:16]}...): "
                         "the file is damaged or was modified")
    try:
        header = json.loads(header_bytes.decode())
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"{path!r} is damaged: its header is not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"{path!r} is not a tensornet model file (format {found!r})")
    version = header.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path!r} is damaged: its format version {version!r} is not an integer")
    if version > VERSION:
        raise ValueError(f"{path!r} was written by a newer tensornet (format version {header['version']}; "
                         f"this one reads up to {VERSION})")
    index = header.get("arrays", {})
    if not isinstance(index, dict) or set(index) != set(members):
        raise ValueError(f"{path!r}: the arrays in the file do not match its header")
    for name, array in members.items():
        if index[name] != {"dtype": array.dtype.str, "shape": list(array.shape)}:
            raise ValueError(f"{path!r}: array {name!r} is {array.dtype.str} of shape {list(array.shape)}, "
                             f"its header says {index[name]!r}")
    return header, members


# ---------------------------------------------------------------------- pieces of a model
def _layer_classes():
    from . import layers

    classes = {}
    for name in dir(layers):
        obj = getattr(layers, name)
        if isinstance(obj, type) and issubclass(obj, layers.Layer):
            classes[obj.__name__] = obj
    return classes


def _layer_from_config(class_name, config, custom_objects):
    from . import activations, initializers

    cls = (custom_objects or {}).get(class_name) or _layer_classes().get(class_name)
    if cls is None:
        raise ValueError(f"unknown layer class {class_name!r}; pass it in custom_objects={{'{class_name}': cls}}")
    kwargs = {}
    for key, value in config.items():
        if key == "activation" and isinstance(value, dict):
            value = activations.from_config(value)
        elif key.endswith("_initializer") and isinstance(value, dict):
            value = initializers.from_config(value)
        elif key == "input_shape" and value is not None:
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _schedule_config(schedule):
    config = schedule.get_config()
    return json.loads(json.dumps(config, default=repr))


def _schedule_from_config(config, custom_objects):
    from . import schedules

    if config["name"] == "LambdaSchedule":
        fn = (custom_objects or {}).get(config.get("fn"))
        if fn is None:
            raise ValueError(f"the model's learning rate is the function {config.get('fn')!r}, which a file cannot "
                             f"hold: pass it as load_model(path, custom_objects={{{config.get('fn')!r}: fn}})")
        return schedules.LambdaSchedule(fn)
    custom = (custom_objects or {}).get(config["name"])
    if custom is not None:
        return custom(**{k: v for k, v in config.items() if k != "name"})
    return schedules.from_config(config)


def optimizer_config(optimizer) -> dict:
    """Class name and constructor arguments of ``optimizer`` (read from its attributes)."""
    config = {}
    for name in inspect.signature(type(optimizer).__init__).parameters:
        if name in _SKIPPED_OPTIMIZER_ARGS:
            continue
        if not hasattr(optimizer, name):
            raise ValueError(f"cannot save optimizer {type(optimizer).__name__}: argument {name!r} is not "
                             "kept as an attribute of the same name")
        config[name] = getattr(optimizer, name)
    for name in _BASE_OPTIMIZER_ARGS:
        config[name] = getattr(optimizer, name, None)
    return {"class": type(optimizer).__name__, "config": config, "schedule": _schedule_config(optimizer.schedule)}


def _optimizer_from_config(spec, custom_objects):
    from . import optimizers

    classes = {cls.__name__: cls for cls in vars(optimizers).values()
               if isinstance(cls, type) and issubclass(cls, optimizers.Optimizer)}
    cls = (custom_objects or {}).get(spec["class"]) or classes.get(spec["class"])
    if cls is None:
        raise ValueError(f"unknown optimizer class {spec['class']!r}")
    schedule = _schedule_from_config(spec["schedule"], custom_objects)
    kwargs = {k: v for k, v in spec["config"].items() if v is not None or k not in _BASE_OPTIMIZER_ARGS}
    return cls(learning_rate=schedule, **kwargs)


def _rng_state(rng):
    return None if rng is None else rng.bit_generator.state


def _restore_rng(ops, state):
    rng = ops.rng(0)
    if rng.bit_generator.state["bit_generator"] != state["bit_generator"]:
        bit_generator = getattr(numpy.random, state["bit_generator"])()
        rng = numpy.random.Generator(bit_generator)
    rng.bit_generator.state = state
    return rng


# ---------------------------------------------------------------------- models
def model_header_and_arrays(model, include_optimizer=True, weights_only=False):
    from . import __version__

    header = {"format": FORMAT, "version": VERSION, "tensornet_version": __version__,
              "kind": "weights" if weights_only else "model"}
    arrays = {}
    ops = model.ops
    if model.built:
        slots = []
        for i, (layer, name, view, _) in enumerate(model.store.views()):
            arrays[f"weights/{i}"] = ops.to_numpy(view).copy()
            slots.append([model.layers.index(layer), name])
        header["weights"] = slots
        for index, layer in enumerate(model.layers):
            for name, value in layer.get_state_arrays().items():  # host copies already
                arrays[f"state/{index}/{name}"] = value
    else:
        header["weights"] = None
    header["model"] = {"class": type(model).__name__, "name": model.name, "dtype": str(model.dtype),
                       "seed": model.seed, "built": model.built,
                       "input_shape": list(model.input_shape) if model.input_shape is not None else None,
                       "layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                                  for layer in model.layers]}
    if weights_only:
        return header, arrays
    header["compile"] = None
    if model.compiled:
        metric_ids = list(getattr(model, "_metric_ids", []))
        for metric in metric_ids:
            if not isinstance(metric, str):
                raise ValueError(f"cannot save metric {metric!r}: only metric names can be saved")
        header["compile"] = {"loss": model.loss.get_config(), "metrics": metric_ids, "jit_compile": model.jit_compile}
    header["optimizer"] = None
    if model.compiled and include_optimizer:
        spec = optimizer_config(model.optimizer)
        spec["iterations"] = model.optimizer.iterations
        if model.built:
            state = model.optimizer.get_state(ops)
            spec["iterations"] = state["iterations"]
            spec["scalars"] = state.get("scalars", {})
            spec["lr_multiplier"] = state.get("lr_multiplier", 1.0)
            spec["buffers"] = sorted(state["buffers"])
            for key, value in state["buffers"].items():
                arrays[f"optimizer/{key}"] = numpy.array(value, copy=True)
        else:
            spec["lr_multiplier"] = getattr(model.optimizer, "lr_multiplier", 1.0)
        header["optimizer"] = spec
    layer_rngs = {str(index): _rng_state(layer.rng) for index, layer in enumerate(model.layers)
                  if layer.rng is not None and layer.rng is not model.rng}
    header["rng"] = {"model": _rng_state(model.rng), "layers": layer_rngs}
    logs, epochs = full_history(model)
    header["training"] = {"epochs_completed": int(getattr(model, "epochs_completed", 0) or 0),
                          "history": logs, "history_epochs": epochs}
    return header, arrays


def save_model(model, path, include_optimizer=True):
    """Write ``model`` to ``path`` (see the module docstring for what is kept)."""
    header, arrays = model_header_and_arrays(model, include_optimizer=include_optimizer)
    write_archive(path, header, arrays)


def save_weights(model, path):
    """Write only the architecture summary and the weights (and layers' non-trainable state)."""
    model._require_built("save_weights")
    header, arrays = model_header_and_arrays(model, weights_only=True)
    write_archive(path, header, arrays)


def _set_layer_states(model, header, arrays):
    for index, layer in enumerate(model.layers):
        prefix = f"state/{index}/"
        state = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
        if state:
            setter = getattr(layer, "set_state_arrays", None)
            if setter is None:
                raise ValueError(f"layer {layer.name!r} has saved state but cannot take it")
            setter(state)


def _weights_list(header, arrays):
    count = len(header["weights"] or [])
    return [arrays[f"weights/{i}"] for i in range(count)]


# ---------------------------------------------------------------------- checking a header before use
class _LoadError(ValueError):
    """A load failure whose message is already complete (passed through :func:`_malformed_file`)."""


@contextlib.contextmanager
def _malformed_file(path):
    """Turn any failure while interpreting a header that passed its checksum (a missing key, a value
    of the wrong type, a config a constructor rejects...) into a ValueError naming the file."""
    try:
        yield
    except (_LoadError, MemoryError):
        raise
    except Exception as exc:
        detail = str(exc) if type(exc) is ValueError else f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{os.fspath(path)!r}: malformed model file: {detail}") from exc


def _require(condition, problem):
    if not condition:
        raise ValueError(problem)


def _planned_weights(layers, input_shape):
    """What building ``layers`` for ``input_shape`` would allocate, worked out on shallow copies
    of the layers (``compute_output_shape`` and ``build_weights`` only), allocating nothing of that
    size: ``(weights, states)``, ``weights`` a list of (layer index, name, shape) in
    ``get_weights`` order and ``states`` each layer's count of non-trainable values."""
    from .layers.base import check_shape

    ops = _default_ops()
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
    _require(isinstance(slots, list) and len(slots) == len(planned),
             f"the architecture has {len(planned)} weights, the header lists "
             f"{len(slots) if isinstance(slots, list) else repr(slots)}")
    for i, ((index, name, shape), slot) in enumerate(zip(planned, slots)):
        stored = arrays.get(f"weights/{i}")
        _require(stored is not None, f"weight {i} (layer {index} {name!r}) is missing")
        _require(slot == [index, name], f"weight {i} is listed as {slot!r}, the architecture has [{index}, {name!r}]")
        _require(stored.dtype.kind == "f", f"weight {i} (layer {index} {name!r}) has dtype {stored.dtype}, "
                                           "not a floating-point type")
        _require(tuple(stored.shape) == shape, f"layer {index} weight {name!r} has shape {shape} in the "
                                               f"architecture, {tuple(stored.shape)} in the file")
    for index, count in enumerate(states):
        held = sum(a.size for key, a in arrays.items() if key.startswith(f"state/{index}/"))
        _require(count <= held, f"layer {index} keeps {count} values of state, the file stores {held}")


def _check_rng_state(state):
    name = state["bit_generator"]
    cls = getattr(numpy.random, name, None) if isinstance(name, str) else None
    _require(isinstance(cls, type) and issubclass(cls, numpy.random.BitGenerator)
             and cls is not numpy.random.BitGenerator, f"unknown random bit generator {name!r}")


def _check_model_archive(path, header, arrays, custom_objects=None, compile=True):
    """Check read_archive's ``(header, arrays)`` before :func:`model_from_archive` builds anything:
    the kind, the custom objects it needs, the random generators' names, and, where loading builds
    the model, that the architecture's weights are exactly those stored (so a header that implies
    more parameters than the file holds is refused before allocating them). Raise a ValueError
    naming the file; a structural problem (missing key, wrong type) raises inside
    :func:`_malformed_file`, which names it too."""
    path = os.fspath(path)
    if header.get("kind") != "model":
        raise _LoadError(f"{path!r} holds weights only; build the model and call load_weights")
    spec = header["model"]
    _require(spec["class"] == "Sequential", f"unknown model class {spec['class']!r}")
    _require(isinstance(spec["layers"], list), f"the model's layers are {spec['layers']!r}, not a list")
    known, custom = _layer_classes(), custom_objects or {}
    for item in spec["layers"]:
        _require(isinstance(item["class"], str), f"layer class {item['class']!r} is not a name")
        if item["class"] not in custom and item["class"] not in known:
            raise _LoadError(f"{path!r}: unknown layer class {item['class']!r}; pass it in "
                             f"custom_objects={{'{item['class']}': cls}}")
    compiled = header.get("compile") if compile else None
    optimizer_spec = header.get("optimizer")
    if compiled is not None and optimizer_spec is not None:
        schedule = optimizer_spec["schedule"]
        if schedule["name"] == "LambdaSchedule":
            fn = schedule.get("fn")
            _require(isinstance(fn, str), f"the learning-rate schedule {schedule!r} names no function")
            if custom.get(fn) is None:
                raise _LoadError(f"{path!r}: the model's learning rate is the function {fn!r}, which a file cannot "
                                 f"hold: pass it as load_model(path, custom_objects={{{fn!r}: fn}})")
    for name, array in arrays.items():
        _require(array.dtype.kind == "f" or not name.startswith(("weights/", "state/", "optimizer/")),
                 f"array {name!r} has dtype {array.dtype}, not a floating-point type")
    rng = header.get("rng", {})
    for state in [rng.get("model"), *rng.get("layers", {}).values()]:
        if state is not None:
            _check_rng_state(state)
    layers = [_layer_from_config(item["class"], item["config"], custom_objects) for item in spec["layers"]]
    # the shape model_from_archive builds for: compile builds a model whose first layer knows its
    # input shape; otherwise a model saved built is built for its saved input shape
    input_shape = layers[0].input_shape if compiled is not None and layers else None
    if input_shape is None and spec["built"]:
        input_shape = spec["input_shape"]
    if input_shape is not None:
        _check_stored_weights(header, arrays, *_planned_weights(layers, input_shape))


def _check_weights_fit(path, model, header, arrays):
    """Every stored weight and layer state fits ``model`` (count, shape, dtype) before any is set,
    so that a file that does not fit leaves the model untouched."""
    def fit(condition, problem):
        if not condition:
            raise _LoadError(f"{os.fspath(path)!r} does not fit model {model.name!r}: {problem}")

    views = list(model.store.views())
    slots = header["weights"]
    _require(isinstance(slots, list), f"the header's list of weights is {slots!r}")
    fit(len(slots) == len(views), f"the file holds {len(slots)} weights, the model has {len(views)}")
    for i, (layer, name, view, _) in enumerate(views):
        stored = arrays.get(f"weights/{i}")
        _require(stored is not None, f"weight {i} is missing")
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


def load_weights(model, path):
    """Set ``model``'s weights (and layer state) from a file written by ``save`` or ``save_weights``.

    Everything is checked against the model first: a file that does not fit raises a ValueError
    naming it and leaves the model's weights as they were."""
    model._require_built("load_weights")
    header, arrays = read_archive(path)
    if header.get("weights") is None:
        raise ValueError(f"{os.fspath(path)!r} holds no weights (the model was saved unbuilt)")
    with _malformed_file(path):
        _check_weights_fit(path, model, header, arrays)
        model.set_weights(_weights_list(header, arrays))
        _set_layer_states(model, header, arrays)


def load_model(path, custom_objects=None, compile=True):
    """Rebuild the model saved at ``path``: architecture, weights, optimizer state and step,
    schedule, random-generator states, epochs completed and history.

    A damaged file, or one whose header (checksum valid) does not describe a model consistent
    with its arrays, raises a ValueError naming the file; the architecture is checked against the
    stored weights before anything of its size is allocated."""
    header, arrays = read_archive(path)
    return model_from_archive(header, arrays, path, custom_objects=custom_objects, compile=compile)


def model_from_archive(header, arrays, path, custom_objects=None, compile=True):
    """The model that :func:`read_archive`'s ``(header, arrays)`` of ``path`` describe, after
    :func:`_check_model_archive` (any failure is a ValueError naming ``path``)."""
    with _malformed_file(path):
        _check_model_archive(path, header, arrays, custom_objects=custom_objects, compile=compile)
        return _build_model(header, arrays, custom_objects=custom_objects, compile=compile)


def _build_model(header, arrays, custom_objects=None, compile=True):
    from .callbacks import History
    from .models import Sequential

    spec = header["model"]
    layers = [_layer_from_config(item["class"], item["config"], custom_objects) for item in spec["layers"]]
    model = Sequential(layers, name=spec["name"], dtype=spec["dtype"], seed=spec["seed"])
    compiled = header.get("compile") if compile else None
    if compiled is not None:
        from . import losses

        optimizer_spec = header.get("optimizer")
        optimizer = (_optimizer_from_config(optimizer_spec, custom_objects) if optimizer_spec is not None
                     else "rmsprop")
        model.compile(optimizer=optimizer, loss=losses.from_config(compiled["loss"]), metrics=compiled["metrics"],
                      jit_compile=compiled.get("jit_compile", "auto"))
    if spec["built"] and not model.built:
        model.build(tuple(spec["input_shape"]))
    if model.built and header.get("weights") is not None:
        model.set_weights(_weights_list(header, arrays))
        _set_layer_states(model, header, arrays)
    optimizer_spec = header.get("optimizer")
    if compiled is not None and optimizer_spec is not None:
        optimizer = model.optimizer
        if model.built:
            buffers = {key: arrays[f"optimizer/{key}"] for key in optimizer_spec.get("buffers", [])}
            optimizer.set_state(model.ops, {"iterations": optimizer_spec["iterations"], "buffers": buffers,
                                            "scalars": optimizer_spec.get("scalars", {}),
                                            "lr_multiplier": optimizer_spec.get("lr_multiplier", 1.0)})
        else:
            optimizer.iterations = int(optimizer_spec["iterations"])
        optimizer.lr_multiplier = float(optimizer_spec.get("lr_multiplier", 1.0))
    rng = header.get("rng", {})
    if rng.get("model") is not None:
        ops = model.ops or _default_ops()
        model.rng = _restore_rng(ops, rng["model"])
        for layer in model.layers:
            if hasattr(layer, "rng") and getattr(layer, "seed", None) is None and model.built:
                layer.rng = model.rng
    for index, state in rng.get("layers", {}).items():
        layer = model.layers[int(index)]
        layer.rng = _restore_rng(model.ops or _default_ops(), state)
    training = header.get("training", {})
    model.epochs_completed = int(training.get("epochs_completed", 0))
    history = History()
    history.history = {key: list(values) for key, values in training.get("history", {}).items()}
    history.epoch = list(training.get("history_epochs", []))
    model.history = history
    model._loaded_history = (history.history, history.epoch)
    return model


def _default_ops():
    from .backend import get_backend

    return get_backend()


# ---------------------------------------------------------------------- history across resumes
def full_history(model):
    """(logs, epochs): the model's history over every run, the one it was loaded with (before a
    resume) followed by the current ``model.history``; keys missing from a part read as NaN."""
    current = getattr(model, "history", None)
    logs = dict(getattr(current, "history", {}) or {})
    epochs = list(getattr(current, "epoch", []) or [])
    before_logs, before_epochs = getattr(model, "_loaded_history", ({}, []))
    first = min(epochs) if epochs else None
    keep = [i for i, e in enumerate(before_epochs) if first is None or e < first]
    if current is not None and before_epochs == epochs and before_logs == logs:
        keep = []
    keys = list(dict.fromkeys([*before_logs, *logs]))
    merged = {}
    for key in keys:
        old = before_logs.get(key, [])
        new = logs.get(key, [])
        merged[key] = ([old[i] if i < len(old) else float("nan") for i in keep]
                       + [new[i] if i < len(new) else float("nan") for i in range(len(epochs))])
    return merged, [before_epochs[i] for i in keep] + epochs


def write_history(logs, epochs, path):
    """Write a history as JSON (``.json``: ``{"epoch": [...], "loss": [...], ...}``) or CSV
    (anything else: ``epoch`` then the keys in sorted order, as CSVLogger), atomically."""
    import csv
    import io

    path = os.fspath(path)
    if path.lower().endswith(".json"):
        text = json.dumps({"epoch": list(epochs), **logs}, indent=1)
    else:
        buffer = io.StringIO()
        keys = sorted(logs)
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", *keys])
        for i, epoch in enumerate(epochs):
            writer.writerow([epoch, *(logs[k][i] for k in keys)])
        text = buffer.getvalue()
    with atomic_write(path) as handle:
        handle.write(text.encode())
    return path
