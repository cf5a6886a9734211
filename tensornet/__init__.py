"""tensornet: Keras' simplicity, hand-fused speed. NumPy on the CPU, CuPy on NVIDIA GPUs.

The package is layered, and imports point one way (import-linter checks it; pyproject.toml):

    cli -> models -> training -> nn | optim | datasets | utils -> io -> backend -> kernels/*.cu

- ``cli``: ``tensornet train`` and ``tensornet info`` (beside it ``interop`` and ``plot``);
- ``models``: ``Model`` (graphs of layer calls, the functional API) and ``Sequential`` (its chain
  case), saving and loading models and checkpoints;
- ``training``: the fit / evaluate / predict loop, callbacks, checkpoint files, progress, the
  divergence guard, SIGINT handling;
- ``nn``: layers, activations, losses, metrics, initializers, the flat parameter buffer;
  ``optim``: optimizers and learning-rate schedules; ``datasets``: IDX, MNIST, Fashion-MNIST;
- ``io``: the model-file format; ``backend``: every operation once over ``xp``, the NumPy and
  CuPy backends, and one training step per backend (``Backend.training_step``).

The Keras import paths (``tensornet.layers``, ``.optimizers``, ``.losses``, ``.callbacks``, ...)
re-export these; the library's own code imports the real modules.
"""

from .version import __version__
from . import (activations, backend, callbacks, initializers, layers, losses, metrics, models,
               optimizers, schedules, utils)
from .backend import get_backend, set_backend, use_backend
from .models import Model, Sequential

_LAZY = ("datasets", "interop", "plot")

__all__ = ["activations", "backend", "callbacks", "initializers", "layers", "losses", "metrics",
           "models", "optimizers", "schedules", "utils", *_LAZY, "Model", "Sequential", "get_backend",
           "set_backend", "use_backend", "__version__"]


def __getattr__(name):
    if name in _LAZY:  # imported on first use: not needed to train
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'tensornet' has no attribute {name!r}")
