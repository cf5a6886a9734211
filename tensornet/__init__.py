"""tensornet: Keras' simplicity, hand-fused speed. NumPy on the CPU, CuPy on NVIDIA GPUs."""
__version__ = "0.1.0"

from . import (activations, backend, callbacks, initializers, layers, losses, metrics, models,
               optimizers, schedules, utils)
from .backend import get_backend, set_backend, use_backend
from .models import Sequential

__all__ = ["activations", "backend", "callbacks", "initializers", "layers", "losses", "metrics",
           "models", "optimizers", "schedules", "utils", "datasets", "Sequential", "get_backend",
           "set_backend", "use_backend", "__version__"]


def __getattr__(name):
    if name == "datasets":  # imported on first use: the data loaders are not needed to train
        import importlib

        return importlib.import_module(".datasets", __name__)
    raise AttributeError(f"module 'tensornet' has no attribute {name!r}")
