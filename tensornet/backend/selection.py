"""Choosing a backend: by name, by a context manager, or by ``TENSORNET_BACKEND``.

``auto`` means CuPy when it imports *and* sees a GPU, NumPy otherwise. Importing tensornet
never imports CuPy; asking for ``cupy`` where it cannot run raises
:class:`BackendUnavailableError` saying which piece is missing.
"""
from __future__ import annotations

import contextlib
import contextvars
import os

from .base import Backend
from .numpy_backend import NumpyBackend

ENV_VAR = "TENSORNET_BACKEND"
NAMES = ("auto", "numpy", "cupy")

_instances: dict[str, Backend] = {}
_current: contextvars.ContextVar = contextvars.ContextVar("tensornet_backend", default=None)
_default_name: str | None = None


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine; the message says why."""


def cupy_status() -> tuple[bool, str]:
    """(usable, reason): whether CuPy imports, finds a CUDA driver and sees a device."""
    try:
        import cupy  # noqa: F401  (optional dependency)
    except Exception as exc:  # ImportError, or a broken CUDA install raising anything
        return False, (f"CuPy is not installed or failed to import ({exc.__class__.__name__}: {exc}); "
                       "install tensornet[cuda12] or tensornet[cuda13]")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"CuPy imports but finds no usable CUDA driver ({exc.__class__.__name__}: {exc})"
    if count < 1:
        return False, "CuPy and the CUDA driver are present but no GPU device is visible"
    return True, f"{count} CUDA device(s) visible"


def _create(name: str) -> Backend:
    if name == "numpy":
        return NumpyBackend()
    usable, reason = cupy_status()
    if not usable:
        raise BackendUnavailableError(f"backend 'cupy' cannot run here: {reason}")
    from .cupy_backend import CupyBackend

    return CupyBackend()


def resolve_name(name: str | None) -> str:
    """The concrete backend name (``numpy`` or ``cupy``) that ``name`` selects."""
    if name is None:
        name = _default_name or os.environ.get(ENV_VAR) or "auto"
    if not isinstance(name, str) or name.lower() not in NAMES:
        source = f" (from ${ENV_VAR})" if name == os.environ.get(ENV_VAR) else ""
        raise ValueError(f"backend must be one of {', '.join(NAMES)}; got {name!r}{source}")
    name = name.lower()
    if name == "auto":
        return "cupy" if cupy_status()[0] else "numpy"
    return name


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend called ``name``; with no name the one a ``use_backend`` block, a
    ``set_backend`` call or ``$TENSORNET_BACKEND`` selects (``auto`` when none does)."""
    if isinstance(name, Backend):
        return name
    if name is None and _current.get() is not None:
        return _current.get()
    concrete = resolve_name(name)
    if concrete not in _instances:
        _instances[concrete] = _create(concrete)
    return _instances[concrete]


def set_backend(name: str | None) -> Backend:
    """Make ``name`` the process-wide default backend (``None`` returns to the environment)."""
    global _default_name
    backend = get_backend(name) if name is not None else None
    _default_name = backend.name if backend is not None else None
    return backend or get_backend()


@contextlib.contextmanager
def use_backend(name: str | Backend):
    """Within the ``with`` block, ``get_backend()`` returns the backend ``name`` selects."""
    token = _current.set(get_backend(name))
    try:
        yield _current.get()
    finally:
        _current.reset(token)
