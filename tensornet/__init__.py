"""tensornet: Keras' simplicity, hand-fused speed. NumPy on the CPU, CuPy on NVIDIA GPUs."""

from .version import __version__
from . import (activations, backend, callbacks, initializers, layers, losses, metrics, models,
               optimizers, schedules, utils)
from .backend import get_backend, set_backend, use_backend
from .models import Sequential

_LAZY = ("datasets", "interop", "plot")

__all__ = ["activations", "backend", "callbacks", "initializers", "layers", "losses", "metrics",
           "models", "optimizers", "schedules", "utils", *_LAZY, "Sequential", "get_backend",
           "set_backend", "use_backend", "__version__"]


def __getattr__(name):
    if name in _LAZY:  # imported on first use: not needed to train
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'tensornet' has no attribute {name!r}")
