"""The CuPy backend's own code on the host harness: :func:`harness_backend`.

``tensornet/backend/cupy_backend.py`` is loaded from its file (under a private module name, the
real ``tensornet.backend.cupy_backend`` untouched) with :mod:`.host_cupy` as its ``cupy`` and
``cupyx``, and :class:`HarnessCupyBackend` points its launcher seam
(``CupyBackend._kernel``) at the harness build of the same ``kernels/<family>.cu``
(:func:`tests.cuda_harness.load_family`). Everything else is the backend's code as a GPU runs
it: input checks, dispatch between fused kernels and the reference, argument packing, scalar
types, grid sizes (with the stand-in device's multiprocessor count) and name expressions.

Test-only: nothing under ``tensornet/`` imports this, and the backend's selection never
returns it (``get_backend("cupy")`` still needs CuPy and a GPU).
"""
from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import tensornet.backend

from . import host_cupy, load_family

_PATH = Path(tensornet.backend.__file__).resolve().parent / "cupy_backend.py"
_module = None


def cupy_backend_module():
    """``cupy_backend.py`` loaded with the host stand-ins for ``cupy`` and ``cupyx`` (once)."""
    global _module
    if _module is None:
        saved = {name: sys.modules.get(name) for name in ("cupy", "cupyx")}
        sys.modules["cupy"], sys.modules["cupyx"] = host_cupy, host_cupy.cupyx
        try:
            spec = importlib.util.spec_from_file_location("tensornet.backend._cupy_backend_on_harness", _PATH)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            for name, value in saved.items():
                if value is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = value
        _module = module
    return _module


def _harness_class():
    base = cupy_backend_module().CupyBackend

    class HarnessCupyBackend(base):
        """``CupyBackend`` with its kernels fetched from the host harness; ``launches`` lists
        the name expression of every launch, in order."""

        def __init__(self):
            super().__init__()
            self.launches: list[str] = []

        def _kernel(self, family, name_expression):
            kernel = load_family(family).get_function(name_expression)

            def launch(grid, block, args):
                self.launches.append(name_expression)
                kernel(grid, block, args)
            return launch

    return HarnessCupyBackend


_class = None


def harness_backend():
    """A fresh ``CupyBackend`` running on the host harness (see the module docstring)."""
    global _class
    if _class is None:
        _class = _harness_class()
    return _class()


@contextlib.contextmanager
def counting_syncs():
    """Within the block, :data:`host_cupy.syncs` collects every implicit device sync; yields
    that list (emptied on entry)."""
    del host_cupy.syncs[:]
    try:
        yield host_cupy.syncs
    finally:
        pass
