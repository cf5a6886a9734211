"""Model weights to and from PyTorch and JAX through DLPack, without copies.

Export: :func:`to_torch` / :func:`to_jax` (and :func:`to_dlpack_arrays`) return one tensor per
weight, in ``get_weights`` order, that *shares memory* with the model's flat parameter buffer
(a CPU tensor for the NumPy backend, a CUDA tensor on the same device for CuPy). Nothing is
copied: an in-place change on either side is seen by the other, e.g. editing the exported
torch tensors under ``torch.no_grad()`` edits the model. :func:`flat_to_torch` exports the whole
flat buffer of one dtype as one 1-D tensor.

Import: :func:`from_torch` / :func:`from_jax` (and :func:`from_dlpack_arrays`) wrap each
source tensor as a backend array through DLPack (no copy, no trip through the host) and
write it into the model's flat buffer in place: one device-side copy per weight, which is the
only way a model keeps all its weights in one buffer. Shapes and dtypes must match.

PyTorch and JAX are imported only when these functions are called; JAX arrays are immutable,
so writing into an exported JAX array is not possible (read-only sharing).
"""
from __future__ import annotations


def _weight_views(model):
    model._require_built("exporting weights")
    return [(layer, name, view) for layer, name, view, _ in model.store.views()]


def to_dlpack_arrays(model):
    """The model's weight views (backend arrays, ``get_weights`` order): each supports
    ``__dlpack__``, for any DLPack consumer."""
    return [view for _, _, view in _weight_views(model)]


def to_torch(model):
    """One ``torch.Tensor`` per weight (``get_weights`` order), sharing the model's memory."""
    import torch

    return [torch.from_dlpack(view) for view in to_dlpack_arrays(model)]


def flat_to_torch(model, dtype=None):
    """The whole flat parameter buffer (of ``dtype``, default the model's) as one 1-D tensor
    sharing memory with the model (alignment padding included, always zero)."""
    import torch

    from .backend.config import check_float_dtype

    model._require_built("exporting weights")
    # groups are keyed by dtype *name*: str(numpy.float32) would be "<class 'numpy.float32'>"
    params, _ = model.store.groups[model.dtype if dtype is None else check_float_dtype(dtype, "dtype")]
    return torch.from_dlpack(params)


def to_jax(model):
    """One ``jax.Array`` per weight (``get_weights`` order), sharing the model's memory where JAX
    accepts the buffer without copying (it copies when the alignment does not suit it)."""
    import jax.dlpack

    return [jax.dlpack.from_dlpack(view) for view in to_dlpack_arrays(model)]


def _as_backend_array(ops, tensor, what):
    if ops.is_array(tensor):
        return tensor
    try:
        return ops.xp.from_dlpack(tensor)
    except (TypeError, BufferError, RuntimeError, ValueError) as exc:
        raise TypeError(f"{what} cannot be shared through DLPack with the {ops.name} backend "
                        f"({type(tensor).__name__}: {exc}); move it to the model's device first") from None


def from_dlpack_arrays(model, tensors):
    """Set the model's weights from DLPack-capable tensors (``get_weights`` order), each wrapped
    without a copy and written into the flat buffer on the device."""
    views = _weight_views(model)
    tensors = list(tensors)
    if len(tensors) != len(views):
        raise ValueError(f"expected {len(views)} tensors (one per weight); got {len(tensors)}")
    ops = model.ops
    arrays = []
    for (layer, name, view), tensor in zip(views, tensors):
        what = f"the tensor for {layer.name}/{name}"
        array = _as_backend_array(ops, tensor, what)
        if tuple(array.shape) != tuple(view.shape):
            raise ValueError(f"{what} has shape {tuple(array.shape)}; expected {tuple(view.shape)}")
        if array.dtype != view.dtype:
            raise TypeError(f"{what} has dtype {array.dtype}; expected {view.dtype} (convert it first)")
        arrays.append(array)
    for (_, _, view), array in zip(views, arrays):
        view[...] = array


def from_torch(model, tensors):
    """Set the weights from torch tensors (``get_weights`` order; detached, on the model's device)."""
    return from_dlpack_arrays(model, [t.detach() if hasattr(t, "detach") else t for t in tensors])


def from_jax(model, arrays):
    """Set the weights from JAX arrays (``get_weights`` order, on the model's device)."""
    return from_dlpack_arrays(model, arrays)
