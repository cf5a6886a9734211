"""tensornet: Keras' simplicity, hand-fused speed. NumPy on the CPU, CuPy on NVIDIA GPUs."""
__version__ = "0.1.0"

from . import (activations, backend, callbacks, initializers, layers, losses, metrics, models,
               optimizers, schedules, utils)
from .backend import get_backend, set_backend, use_backend
from .models import Sequential

_LAZY = ("datasets", "interop", "plot", "progress", "saving")

__all__ = ["activations", "backend", "callbacks", "initializers", "layers", "losses", "metrics",
           "models", "optimizers", "schedules", "utils", *_LAZY, "Sequential", "get_backend",
           "set_backend", "use_backend", "__version__"]


def __getattr__(name):
    if name in _LAZY:  # imported on first use: not needed to train
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'tensornet' has no attribute {name!r}")
