"""Loading the CUDA kernels: each ``kernels/<family>.cu`` is read as text into a ``cupy.RawModule``.

One family per ``.cu`` file; a family's kernels are C++ templates whose instantiations are
named by *name expressions* (``"sgd_update<float>"``, ``"bias_activation<double, Relu>"``),
the dtype always part of the name. A module is compiled by NVRTC on first use (CuPy keeps the
binary in its on-disk cache) and cached here per (family, device id)::

    kernel = get_kernel("optimizers", "sgd_update<float>")
    kernel((blocks,), (threads,), (n, w, g, ...))

This module imports CuPy only inside the functions that compile, so the CPU tests can check
that every family's source exists and declares its kernels without CuPy installed.

The ``.cu`` files are looked for in ``$TENSORNET_KERNELS_DIR`` (when set), the repository's
top-level ``kernels/`` directory, then ``tensornet/backend/_kernels/`` (package data).
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

#: NVRTC options of every family. ``--fmad=false`` keeps ``a * b + c`` from being contracted
#: into an FMA, so the elementwise kernels round like the NumPy reference.
OPTIONS = ("-std=c++17", "--fmad=false")

#: C++ type of each supported float dtype (arithmetic is done in that type).
FLOAT_CTYPES = {"float32": "float", "float64": "double"}
#: C++ type of each integer label dtype the sparse cross-entropy kernel reads.
LABEL_CTYPES = {"int32": "int", "int64": "long long"}

#: Activation name -> functor struct in ``activations.cu``.
ACTIVATION_STRUCTS = {"linear": "Linear", "relu": "Relu", "leaky_relu": "LeakyRelu",
                      "sigmoid": "Sigmoid", "tanh": "Tanh"}
#: Activations whose backward pass has a fused kernel (linear's is a copy).
BACKWARD_ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")

#: Optimizer update kernels in ``optimizers.cu`` (one per ``Backend.<name>`` method).
OPTIMIZER_KERNELS = ("sgd_update", "rmsprop_update", "adagrad_update", "adadelta_update",
                     "adam_update", "adamax_update", "nadam_update")

#: Convolution and pooling kernels in ``im2col.cu`` (one per ``Backend.<name>`` method).
CONV_KERNELS = ("im2col", "col2im", "max_pool2d", "max_pool2d_backward")

_CTYPES = tuple(FLOAT_CTYPES.values())


def _activation_names() -> tuple[str, ...]:
    forward = [f"bias_activation<{t}, {ACTIVATION_STRUCTS[a]}>"
               for t in _CTYPES for a in ACTIVATION_STRUCTS]
    backward = [f"activation_backward<{t}, {ACTIVATION_STRUCTS[a]}>"
                for t in _CTYPES for a in BACKWARD_ACTIVATIONS]
    return tuple(forward + backward)


def _softmax_names() -> tuple[str, ...]:
    dense = [f"softmax_cross_entropy<{t}>" for t in _CTYPES]
    sparse = [f"sparse_softmax_cross_entropy<{t}, {label}>"
              for t in _CTYPES for label in LABEL_CTYPES.values()]
    forward = [f"bias_activation_softmax<{t}>" for t in _CTYPES]
    return tuple(dense + sparse + forward)


#: family (``kernels/<family>.cu``) -> every name expression compiled from it.
FAMILIES: dict[str, tuple[str, ...]] = {
    "activations": _activation_names(),
    "optimizers": tuple(f"{k}<{t}>" for k in OPTIMIZER_KERNELS for t in _CTYPES),
    "softmax_cross_entropy": _softmax_names(),
    "im2col": tuple(f"{k}<{t}>" for k in CONV_KERNELS for t in _CTYPES),
}

_lock = threading.Lock()
_modules: dict = {}   # (family, device id) -> cupy.RawModule
_functions: dict = {}  # (family, name expression, device id) -> cupy.RawKernel


def float_ctype(dtype) -> str:
    """``"float"`` or ``"double"`` for a float32 / float64 dtype; ValueError otherwise."""
    import numpy

    name = numpy.dtype(dtype).name
    try:
        return FLOAT_CTYPES[name]
    except KeyError:
        raise ValueError(f"CUDA kernels take float32 or float64 arrays, got {name}") from None


def kernel_dirs() -> list[Path]:
    """The directories searched for ``<family>.cu``, in order (existing or not)."""
    here = Path(__file__).resolve()
    dirs = []
    env = os.environ.get("TENSORNET_KERNELS_DIR")
    if env:
        dirs.append(Path(env))
    dirs.append(here.parents[2] / "kernels")
    dirs.append(here.parent / "_kernels")
    return dirs


def source_path(family: str) -> Path:
    """Path of ``<family>.cu``; FileNotFoundError naming the directories searched."""
    if family not in FAMILIES:
        raise KeyError(f"unknown kernel family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    for directory in kernel_dirs():
        path = directory / f"{family}.cu"
        if path.is_file():
            return path
    searched = ", ".join(str(d) for d in kernel_dirs())
    raise FileNotFoundError(f"CUDA source {family}.cu not found (searched {searched})")


_INCLUDE = re.compile(r'^#include "([A-Za-z0-9_.]+\.cuh)"[ \t]*$', re.M)


def read_source(family: str) -> str:
    """The text of ``<family>.cu`` with each ``#include "<name>.cuh"`` replaced by that header
    (from the same directory), so that NVRTC needs no include path and CuPy's compile cache,
    keyed on the text, sees a changed header."""
    path = source_path(family)
    return _INCLUDE.sub(lambda m: (path.parent / m.group(1)).read_text(encoding="utf-8"),
                        path.read_text(encoding="utf-8"))


def available_sources() -> dict[str, Path]:
    """Every ``*.cu`` file found, by family name (first directory wins)."""
    found: dict[str, Path] = {}
    for directory in kernel_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.cu")):
                found.setdefault(path.stem, path)
    return found


def name_expressions(family: str) -> tuple[str, ...]:
    """Every name expression declared for ``family``."""
    if family not in FAMILIES:
        raise KeyError(f"unknown kernel family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[family]


def template_names(family: str) -> tuple[str, ...]:
    """The kernel templates of ``family`` (name expressions without their arguments)."""
    return tuple(dict.fromkeys(re.sub(r"<.*$", "", n) for n in name_expressions(family)))


def get_module(family: str, device_id: int | None = None):
    """The ``cupy.RawModule`` of ``family`` for ``device_id`` (default: the current device)."""
    import cupy

    if device_id is None:
        device_id = cupy.cuda.runtime.getDevice()
    key = (family, device_id)
    module = _modules.get(key)
    if module is None:
        with _lock:
            module = _modules.get(key)
            if module is None:
                module = cupy.RawModule(code=read_source(family), options=OPTIONS,
                                        name_expressions=list(name_expressions(family)))
                _modules[key] = module
    return module


def get_kernel(family: str, name_expression: str, device_id: int | None = None):
    """The compiled kernel ``name_expression`` of ``family`` (compiled on first use)."""
    if name_expression not in name_expressions(family):
        raise KeyError(f"{name_expression!r} is not a kernel of family {family!r}; "
                       f"declared: {', '.join(FAMILIES[family])}")
    if device_id is None:
        import cupy

        device_id = cupy.cuda.runtime.getDevice()
    key = (family, name_expression, device_id)
    function = _functions.get(key)
    if function is None:
        with cupy_device(device_id):
            function = get_module(family, device_id).get_function(name_expression)
        _functions[key] = function
    return function


def compile_all(device_id: int | None = None) -> dict[str, dict[str, int]]:
    """Compile and load every kernel of every family on a device (default: the current one).

    Returns ``{family: {name expression: registers per thread}}``.
    """
    result: dict[str, dict[str, int]] = {}
    for family, names in FAMILIES.items():
        result[family] = {}
        for name in names:
            kernel = get_kernel(family, name, device_id)
            result[family][name] = int(kernel.num_regs)  # loading the function compiles it
    return result


def clear_cache() -> None:
    """Forget the compiled modules (CuPy's on-disk cache is kept)."""
    with _lock:
        _modules.clear()
        _functions.clear()


def cupy_device(device_id: int):
    """``cupy.cuda.Device(device_id)`` as a context manager."""
    import cupy

    return cupy.cuda.Device(device_id)
