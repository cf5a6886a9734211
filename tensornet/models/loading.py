"""Models rebuilt from files: :func:`load_model` (a file written by ``Model.save`` or
``Sequential.save``) and
:func:`load_checkpoint` (one written by the ``Checkpoints`` callback, with where its epoch stood)."""
from __future__ import annotations

import os

from ..backend import get_backend
from ..io.archive import read_archive
from ..nn import losses
from ..training.callbacks import History
from ..training import shard_states
from ..training.checkpoints import ResumePoint
from .archive_checks import check_model_archive, malformed_file
from .configs import layer_from_config, optimizer_from_config, restore_rng
from .saving import set_layer_states, weights_list
from .graph_files import rebuild_graph
from .model import Model
from .sequential import Sequential


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
    :func:`~tensornet.models.archive_checks.check_model_archive` (any failure is a ValueError naming ``path``)."""
    with malformed_file(path):
        check_model_archive(path, header, arrays, custom_objects=custom_objects, compile=compile)
        return _build_model(header, arrays, custom_objects=custom_objects, compile=compile)


def _build_model(header, arrays, custom_objects=None, compile=True):
    spec = header["model"]
    layers = [layer_from_config(item["class"], item["config"], custom_objects) for item in spec["layers"]]
    if spec["class"] == "Model":
        inputs, outputs = rebuild_graph(spec["graph"], layers)
        model = Model(inputs=inputs, outputs=outputs, name=spec["name"], dtype=spec["dtype"], seed=spec["seed"])
    else:
        model = Sequential(layers, name=spec["name"], dtype=spec["dtype"], seed=spec["seed"])
    compiled = header.get("compile") if compile else None
    if compiled is not None:
        optimizer_spec = header.get("optimizer")
        optimizer = (optimizer_from_config(optimizer_spec, custom_objects) if optimizer_spec is not None
                     else "rmsprop")
        loss = compiled["loss"]
        loss = [losses.from_config(item) for item in loss] if isinstance(loss, list) else losses.from_config(loss)
        model.compile(optimizer=optimizer, loss=loss, metrics=compiled["metrics"],
                      loss_weights=compiled.get("loss_weights"), jit_compile=compiled.get("jit_compile", "auto"))
    if spec["built"] and not model.built:
        model.build(tuple(spec["input_shape"]))
    if model.built and header.get("weights") is not None:
        model.set_weights(weights_list(header, arrays))
        set_layer_states(model, header, arrays)
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
        ops = model.ops or get_backend()
        model.rng = restore_rng(ops, rng["model"])
        for layer in model.layers:
            if hasattr(layer, "rng") and getattr(layer, "seed", None) is None and model.built:
                layer.rng = model.rng
    for index, state in rng.get("layers", {}).items():
        layer = model.layers[int(index)]
        layer.rng = restore_rng(model.ops or get_backend(), state)
    training = header.get("training", {})
    model.epochs_completed = int(training.get("epochs_completed", 0))
    history = History()
    history.history = {key: list(values) for key, values in training.get("history", {}).items()}
    history.epoch = list(training.get("history_epochs", []))
    model.history = history
    model._loaded_history = (history.history, history.epoch)
    return model


def load_checkpoint(path, custom_objects=None):
    """The model saved at ``path``, with ``model.resume_point`` set when the checkpoint was taken
    inside an epoch (``fit(initial_epoch=model.epochs_completed)`` continues from it)."""
    header, arrays = read_archive(path)
    model = model_from_archive(header, arrays, os.fspath(path), custom_objects=custom_objects)
    resume = header.get("resume")
    model.resume_point = ResumePoint.from_archive(resume, arrays, os.fspath(path)) if resume else None
    model.shard_states = shard_states.read(header, arrays, os.fspath(path))
    return model
