"""Saving and loading models: a format that executes nothing on load.

A saved model is one ``.npz`` file (a zip of ``.npy`` arrays, read back by the bounded reader
:func:`tensornet.io.npz.read_npz`, which never unpickles and checks every declared size against
the file before allocating) holding:

- ``header``: a JSON document (as uint8 bytes) with the architecture (each layer's class and
  config, and for a graph model its topology, :mod:`.graph_files`), the compile settings (loss,
  metrics and loss weights, per output for several outputs; jit_compile), the optimizer's class, hyper-parameters,
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

import os

import numpy

from ..version import __version__
from ..io.archive import FORMAT, VERSION, read_archive, write_archive
from ..training import shard_states
from .archive_checks import check_weights_fit, malformed_file
from .configs import optimizer_config, rng_state
from .graph_files import graph_spec
from .history import full_history


def model_header_and_arrays(model, include_optimizer=True, weights_only=False):
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
    if getattr(model, "topology", None) is not None:
        header["model"]["graph"] = graph_spec(model)
    if weights_only:
        return header, arrays
    header["compile"] = None
    if model.compiled:
        heads = model.heads
        metric_ids = [m for head in heads for m in head.metric_ids] if heads else list(model._metric_ids)
        for metric in metric_ids:
            if not isinstance(metric, str):
                raise ValueError(f"cannot save metric {metric!r}: only metric names can be saved")
        if not heads:  # a Sequential model compiled before its shapes are known
            compiled = {"loss": model.loss.get_config(), "metrics": metric_ids}
        elif len(heads) == 1:
            compiled = {"loss": heads[0].loss.get_config(), "metrics": list(heads[0].metric_ids)}
        else:  # one entry per output, in output order
            compiled = {"loss": [head.loss.get_config() for head in heads],
                        "metrics": [list(head.metric_ids) for head in heads]}
        header["compile"] = {**compiled, "loss_weights": [head.weight for head in heads] or None,
                             "jit_compile": model.jit_compile}
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
    layer_rngs = {str(index): rng_state(layer.rng) for index, layer in enumerate(model.layers)
                  if layer.rng is not None and layer.rng is not model.rng}
    header["rng"] = {"model": rng_state(model.rng), "layers": layer_rngs}
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


def set_layer_states(model, header, arrays):
    for index, layer in enumerate(model.layers):
        prefix = f"state/{index}/"
        state = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
        if state:
            setter = getattr(layer, "set_state_arrays", None)
            if setter is None:
                raise ValueError(f"layer {layer.name!r} has saved state but cannot take it")
            setter(state)


def weights_list(header, arrays):
    count = len(header["weights"] or [])
    return [arrays[f"weights/{i}"] for i in range(count)]


def load_weights(model, path):
    """Set ``model``'s weights (and layer state) from a file written by ``save`` or ``save_weights``.

    Everything is checked against the model first: a file that does not fit raises a ValueError
    naming it and leaves the model's weights as they were."""
    model._require_built("load_weights")
    header, arrays = read_archive(path)
    if header.get("weights") is None:
        raise ValueError(f"{os.fspath(path)!r} holds no weights (the model was saved unbuilt)")
    with malformed_file(path):
        check_weights_fit(path, model, header, arrays)
        model.set_weights(weights_list(header, arrays))
        set_layer_states(model, header, arrays)


def save_checkpoint(model, path, resume_point=None, shards=None):
    """Write ``model`` as :func:`save_model` does, plus ``resume_point`` (a
    :class:`~tensornet.training.checkpoints.ResumePoint`, when taken inside an epoch) and
    ``shards`` (every rank's resume state of a data-sharded fit,
    :mod:`tensornet.training.shard_states`), to ``path`` atomically."""
    header, arrays = model_header_and_arrays(model)
    header["resume"] = None
    if resume_point is not None:
        header["resume"] = resume_point.header()
        if resume_point.order is not None:
            arrays["resume/order"] = numpy.asarray(resume_point.order, dtype=numpy.int64)
    if shards is not None:
        shard_states.write(header, arrays, shards)
    write_archive(path, header, arrays)
    return path
