"""Backends: the array operations behind every layer, loss and optimizer.

``get_backend("auto" | "numpy" | "cupy")``, ``use_backend(...)`` (a context manager) and the
environment variable ``TENSORNET_BACKEND`` choose one; see :mod:`.selection`.
"""
from .base import EPSILON, Backend
from .config import deterministic, floatx, set_deterministic, set_floatx
from .config import image_data_format
from .numpy_backend import NumpyBackend
from .selection import (BackendUnavailableError, cupy_status, get_backend, set_backend,
                        use_backend)

__all__ = ["Backend", "NumpyBackend", "BackendUnavailableError", "EPSILON", "cupy_status",
           "deterministic", "floatx", "get_backend", "set_backend", "set_deterministic", "set_floatx",
           "use_backend", "image_data_format"]
