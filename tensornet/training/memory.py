"""What a model needs in memory, and the error ``fit``, ``evaluate`` and ``predict`` raise
when the device runs out of it.

Estimates, per model (``itemsize`` bytes per number):

    parameter bytes  = itemsize * (2 * P + S)     P weights (values and gradients), S optimizer
                                                  state numbers (velocities, moments, ...)
    activation bytes = batch * itemsize * (2 * I + 3 * sum_l O_l)
                                                  I numbers per input example; each layer keeps
                                                  its output, the gradient flowing back through
                                                  it, and a pre-activation or mask (O_l numbers
                                                  per example)

The suggested batch size is the largest power of two below the failing one whose activations
take at most half of the memory free once the pool is released.
"""
from __future__ import annotations

import math

from .errors import DeviceOutOfMemoryError

#: Numbers each layer keeps per example per output number (output, its gradient, a pre-activation).
_ACTIVATION_COPIES = 3


def parameter_bytes(model) -> int:
    """Bytes of the weights, their gradients and the optimizer state."""
    if not model.built:
        return 0
    total = sum(params.nbytes + grads.nbytes for params, grads in model.store.groups.values())
    optimizer = getattr(model, "optimizer", None)
    for group in (getattr(optimizer, "state", None) or {}).values():
        total += sum(buffer.nbytes for buffer in group.values())
    return int(total)


def activation_bytes_per_example(model) -> int:
    """Bytes one example's activations and their gradients take during a training step."""
    if not model.built:
        return 0
    itemsize = model.ops.dtype(model.dtype).itemsize
    numbers = 2 * math.prod(model.input_shape)
    numbers += _ACTIVATION_COPIES * sum(math.prod(layer.output_shape) for layer in model.layers)
    return int(numbers * itemsize)


def suggested_batch_size(batch_size, per_example, free_bytes):
    """Largest power of two below ``batch_size`` whose activations fit in half of ``free_bytes``
    (None when not even one example fits, or nothing is known)."""
    if not per_example or not free_bytes or batch_size is None:
        return None
    fits = int(0.5 * free_bytes // per_example)
    if fits < 1:
        return None
    size = 1 << (min(fits, max(batch_size - 1, 1)).bit_length() - 1)
    return size if size < batch_size else None


def _size(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def out_of_memory_error(model, where, batch_size, exc) -> DeviceOutOfMemoryError:
    """Release the memory pool and describe the failure: batch size, parameter and activation
    memory, memory free now, and a batch size that fits."""
    ops = model.ops
    model.release_workspaces()
    ops.release_memory()
    params = parameter_bytes(model)
    per_example = activation_bytes_per_example(model)
    free = ops.free_memory()
    suggestion = suggested_batch_size(batch_size, per_example, free)
    device = "the GPU" if ops.name != "numpy" else "the host"
    message = (f"{where}() ran out of memory on {device} at batch_size={batch_size}: the model's parameters, "
               f"gradients and optimizer state take {_size(params)}, and one batch's activations about "
               f"{_size(per_example * (batch_size or 0))} ({_size(per_example)} per example); "
               f"{_size(free) if free is not None else 'an unknown amount'} is free now that the memory pool "
               "was released. ")
    message += (f"Try batch_size={suggestion}." if suggestion is not None
                else "A smaller batch would not help: the model itself does not fit; use a smaller model "
                     "or a device with more memory.")
    message += f" (The allocation that failed: {type(exc).__name__}: {exc})"
    return DeviceOutOfMemoryError(message, batch_size=batch_size, parameter_bytes=params,
                                  activation_bytes=per_example * (batch_size or 0),
                                  suggested_batch_size=suggestion)
