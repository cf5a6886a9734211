"""Small user-facing helpers (Keras' ``to_categorical`` and ``set_random_seed``)."""
from __future__ import annotations

from .backend import floatx, get_backend, set_deterministic

_global_seed = None
_models_seeded = 0


def set_random_seed(seed, deterministic=False):
    """Make every later model built without ``seed=`` reproducible, as
    ``keras.utils.set_random_seed``: the n-th such model after this call draws its weights,
    shuffles and dropout masks from the generator seeded with ``[seed, n]``. With
    ``deterministic=True`` also turn on deterministic mode
    (:func:`tensornet.backend.set_deterministic`)."""
    global _global_seed, _models_seeded
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    _global_seed, _models_seeded = seed, 0
    if deterministic:
        set_deterministic(True)


def next_model_seed():
    """The seed for the next model built without one: None (fresh entropy) unless
    ``set_random_seed`` was called."""
    global _models_seeded
    if _global_seed is None:
        return None
    _models_seeded += 1
    return [_global_seed, _models_seeded - 1]


def to_categorical(y, num_classes=None, dtype=None):
    """One-hot encode integer labels: row i is e_{y_i} of length ``num_classes``
    (default max(y) + 1), as ``keras.utils.to_categorical``; returns a NumPy array."""
    ops = get_backend("numpy")
    labels = ops.asarray(y)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.dtype.kind not in "iub" and not (labels.dtype.kind == "f" and labels.size
                                                and int(ops.sum(labels != labels.astype("int64"))) == 0):
        raise TypeError(f"to_categorical needs integer labels; got dtype {labels.dtype}")
    flat = labels.reshape(-1).astype("int64")
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
    bad = ops.count_bad_labels(flat, num_classes)
    if bad:
        low, high = ops.min_max(flat)
        raise ValueError(f"y holds {bad} label(s) outside [0, {num_classes - 1}] (min {low}, max {high})")
    out = ops.one_hot(flat, num_classes, dtype=dtype or floatx())
    return out.reshape(labels.shape + (num_classes,))
