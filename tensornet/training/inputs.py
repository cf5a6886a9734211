"""Checking and converting user arrays before training, evaluation or prediction.

Every problem is a ValueError or TypeError naming the argument, what was expected and what
was given -- raised before any work starts, so no training is lost to a bad batch.
"""
from __future__ import annotations

import math


def to_backend_array(ops, data, argument):
    """``data`` as an array of ``ops`` (lists and NumPy arrays converted), or a TypeError."""
    if data is None:
        raise TypeError(f"{argument} is required; got None")
    if ops.is_array(data):
        array = data
    else:
        try:
            array = ops.asarray(ops.to_numpy(data) if hasattr(data, "__array__") else data)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{argument} must be an array of numbers; got {type(data).__name__} ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{argument} must hold numbers (bool, int or float); got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{argument} must have a batch axis; got a scalar")
    return array


def check_finite(ops, array, argument):
    """ValueError unless every element of ``array`` is finite. A float array whose sum is finite
    has none that is NaN or infinite (either makes the sum NaN or infinite), and the sum reads
    it once without a mask the size of ``array``; only a sum that is not finite (a bad value,
    or a finite one past the dtype's range) takes the element-wise check."""
    if array.dtype.kind == "f" and array.size and math.isfinite(ops.to_float(ops.sum(array))):
        return
    if not ops.all_finite(array):
        raise ValueError(f"{argument} contains NaN or infinite values")


def prepare_inputs(ops, x, input_shape, dtype, argument="x"):
    """``x`` as a float array of ``dtype`` with per-example shape ``input_shape``."""
    x = to_backend_array(ops, x, argument)
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"{argument} must have shape (batch, {', '.join(map(str, input_shape))}) for this "
                         f"model; got {tuple(x.shape)}")
    check_finite(ops, x, argument)
    return ops.asarray(x, dtype=dtype)


def prepare_targets(ops, y, loss, output_shape, dtype, argument="y"):
    """``y`` checked against the loss: integer labels in [0, classes) for sparse losses, the
    output's shape (a flat vector is taken as one column for single-unit outputs) otherwise;
    values in [0, 1] for the cross-entropies."""
    y = to_backend_array(ops, y, argument)
    output_size = output_shape[-1]
    if loss.target_kind == "sparse":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise ValueError(f"{argument} must be integer class labels of shape (batch,) for {loss.name}; "
                             f"got shape {tuple(y.shape)} (use categorical_crossentropy for one-hot targets)")
        check_finite(ops, y, argument)
        if y.dtype.kind == "f" and y.size and int(ops.sum(y != y.astype("int64"))):
            raise ValueError(f"{argument} must hold whole-number class labels for {loss.name}; got fractions")
        bad = ops.count_bad_labels(y, output_size) if y.size else 0
        if bad:
            low, high = ops.min_max(y)
            raise ValueError(f"{argument} holds {bad} label(s) outside [0, {output_size - 1}] for a "
                             f"{output_size}-class output (min {low}, max {high})")
        return ops.asarray(y, dtype="int64")
    expected = tuple(output_shape)
    if y.ndim == 1 and expected == (1,):
        y = y.reshape(-1, 1)
    if tuple(y.shape[1:]) != expected:
        hint = ""
        if y.ndim == 1 and loss.name == "categorical_crossentropy":
            hint = (" (integer labels: one-hot encode them with tensornet.utils.to_categorical or use "
                    "loss='sparse_categorical_crossentropy')")
        raise ValueError(f"{argument} must have shape (batch, {', '.join(map(str, expected))}) to match the "
                         f"model output; got {tuple(y.shape)}{hint}")
    check_finite(ops, y, argument)
    if loss.name in ("binary_crossentropy", "categorical_crossentropy") and y.size:
        low, high = ops.min_max(y)
        if low < 0 or high > 1:
            raise ValueError(f"{argument} must hold targets in [0, 1] for {loss.name}; got values from "
                             f"{low} to {high}")
    return ops.asarray(y, dtype=dtype)


def check_same_length(x, y, x_name="x", y_name="y"):
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x_name} and {y_name} must hold the same number of examples; got "
                         f"{x.shape[0]} and {y.shape[0]}")


def check_positive_int(value, argument, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument} must be a positive int; got {value!r}")
    return value


def check_verbose(verbose):
    if verbose not in (0, 1, 2, "auto"):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto'; got {verbose!r}")
    return 1 if verbose == "auto" else verbose
