"""A stand-in for the parts of CuPy that ``tensornet/backend/cupy_backend.py`` uses, over NumPy.

The CuPy backend's module is loaded with this module as its ``cupy`` (and :data:`cupyx` as its
``cupyx``; see :mod:`tests.cuda_harness.backend`), so its Python code runs unchanged on host
arrays: ``xp`` is NumPy with :class:`DeviceArray` as ``cupy.ndarray``, and ``matmul`` (cuBLAS on
a GPU) is NumPy's ``matmul``.

Device arrays behave like CuPy's where the difference matters to a training loop:

- results stay device arrays, 0-d included (NumPy would hand back a scalar): a reduction, an
  element read ``a[i]`` or ``a.sum()`` is a 0-d :class:`DeviceArray`, as with CuPy;
- a host ``numpy.ndarray`` passed to a device operation is a ``TypeError``, as CuPy raises;
- every CuPy operation on device arrays is recorded in :data:`operations` (one launch each on
  a GPU), so launch counts can be compared with the fused kernels' (counted at the seam);
- every implicit synchronisation with the device is recorded in :data:`syncs`: reading a device
  array on the host (``float``, ``int``, ``bool``, ``operator.index``, ``.item()``,
  ``.tolist()``, ``.get()``, ``cupy.asnumpy``), and copying host memory that is not page-locked
  to the device (``cupy.asarray`` / ``cupy.array`` of host data, Python scalars included, and
  ``DeviceArray.set`` from a pageable array). Copies from :func:`cupyx.empty_pinned` buffers
  are asynchronous on a GPU and are not recorded.

:data:`syncs` is a list of ``(kind, where)`` pairs, ``where`` the innermost tensornet frame
that caused the sync (``file:line function``), so a failing test says which line reads.
"""
from __future__ import annotations

import functools
import operator
import sys
import types

import numpy as np

from .launch import MULTIPROCESSORS  # the device's multiprocessor count, as the launch geometry's

__version__ = "0+host-harness"

#: Every implicit device synchronisation so far: (kind, innermost tensornet frame).
syncs: list[tuple[str, str]] = []
#: Every CuPy operation on device arrays so far, by name (one kernel or cuBLAS call each on a
#: GPU: ufuncs, reductions, ``take``, ``copyto``, ...); the backend's own kernels are counted
#: at the launcher seam instead (``HarnessCupyBackend.launches``).
operations: list[str] = []


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if "tensornet" in filename and "cuda_harness" not in filename and "/tests/" not in filename:
            return f"{filename.rsplit('tensornet', 1)[-1]}:{frame.f_lineno} {frame.f_code.co_name}"
        frame = frame.f_back
    return "outside tensornet"


def _record(kind: str) -> None:
    syncs.append((kind, _caller()))


class PinnedArray(np.ndarray):
    """A host array in page-locked memory (what :func:`cupyx.empty_pinned` returns)."""


def _plain(value):
    """``value`` with device arrays as plain NumPy views (lists and tuples looked into)."""
    if isinstance(value, DeviceArray):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _device(value):
    """NumPy results as device arrays (a NumPy scalar as a 0-d array)."""
    if isinstance(value, DeviceArray):
        return value
    if isinstance(value, np.ndarray):
        return value.view(DeviceArray)
    if isinstance(value, np.generic):
        return np.asarray(value).view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(_device(v) for v in value)
    return value


def _refuse_host(values, where: str) -> None:
    for value in values:
        if isinstance(value, (list, tuple)):
            _refuse_host(value, where)
        elif isinstance(value, np.ndarray) and not isinstance(value, DeviceArray):
            raise TypeError(f"{where}: a host numpy.ndarray {value.dtype}{value.shape} was passed "
                            "to a device operation (CuPy raises TypeError: Unsupported type)")


class DeviceArray(np.ndarray):
    """A host array standing for a ``cupy.ndarray`` (see the module docstring)."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        where = f"cupy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        _refuse_host(inputs, where)
        operations.append(where[5:])
        if out is not None:
            _refuse_host(out, where)
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*_plain(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _device(result)

    def __array_function__(self, func, types, args, kwargs):
        where = f"cupy.{func.__name__}"
        _refuse_host(args, where)
        _refuse_host(kwargs.values(), where)
        operations.append(func.__name__)
        out = kwargs.get("out")
        plain_kwargs = {k: _plain(v) for k, v in kwargs.items()}
        result = func(*_plain(args), **plain_kwargs)
        if isinstance(out, DeviceArray):
            return out
        return _device(result)

    def __getitem__(self, key):
        if isinstance(key, np.ndarray) and not isinstance(key, DeviceArray):
            _refuse_host((key,), "cupy.ndarray.__getitem__")
        return _device(np.ndarray.__getitem__(self.view(np.ndarray), _plain(key)))

    # --------------------------------------------------------- reads on the host: synchronise
    def __float__(self):
        _record("float()")
        return float(self.view(np.ndarray))

    def __int__(self):
        _record("int()")
        return int(self.view(np.ndarray))

    def __bool__(self):
        _record("bool()")
        return bool(self.view(np.ndarray))

    def __index__(self):
        _record("operator.index()")
        return operator.index(self.view(np.ndarray))

    def item(self, *args):
        _record(".item()")
        return self.view(np.ndarray).item(*args)

    def tolist(self):
        _record(".tolist()")
        return self.view(np.ndarray).tolist()

    def get(self):
        """The array on the host (CuPy's device-to-host copy)."""
        _record(".get()")
        return self.view(np.ndarray).copy()

    def set(self, host):
        """Copy the host array ``host`` into this array (CuPy's host-to-device copy)."""
        if isinstance(host, DeviceArray):
            raise TypeError("cupy.ndarray.set takes a host numpy.ndarray, got a device array")
        if not isinstance(host, PinnedArray):
            _record("pageable host-to-device copy (.set)")
        if host.shape != self.shape or host.dtype != self.dtype:
            raise ValueError(f"set: {host.dtype}{host.shape} into {self.dtype}{self.shape}")
        np.copyto(self.view(np.ndarray), host.view(np.ndarray))


ndarray = DeviceArray


# ---------------------------------------------------------------- creating and moving arrays
def _to_device(x, dtype, copy):
    if isinstance(x, DeviceArray):
        result = x.view(np.ndarray)
        return _device(np.array(result, dtype=dtype, copy=True) if copy else np.asarray(result, dtype=dtype))
    if not isinstance(x, PinnedArray):
        _record("pageable host-to-device copy (asarray)")
    return _device(np.array(_plain(x), dtype=dtype, copy=True))


def asarray(x, dtype=None, order=None):
    return _to_device(x, dtype, copy=False)


def array(x, dtype=None, copy=True, order="K"):
    return _to_device(x, dtype, copy=bool(copy))


def ascontiguousarray(x, dtype=None):
    if not isinstance(x, DeviceArray):
        return _to_device(x, dtype, copy=True)
    return _device(np.ascontiguousarray(x.view(np.ndarray), dtype=dtype))


def asnumpy(x, stream=None, order="C", out=None):
    """The array on the host: a device-to-host copy, which synchronises."""
    if isinstance(x, DeviceArray):
        _record("cupy.asnumpy")
        return x.view(np.ndarray).copy()
    return np.asarray(x)


def _creator(name):
    make = getattr(np, name)

    @functools.wraps(make)
    def create(*args, **kwargs):
        return _device(make(*_plain(args), **kwargs))
    return create


empty, zeros, ones, full, arange, eye = (_creator(n) for n in ("empty", "zeros", "ones", "full", "arange", "eye"))
empty_like, zeros_like, ones_like, full_like = (
    _creator(n) for n in ("empty_like", "zeros_like", "ones_like", "full_like"))


def __getattr__(name):
    """Every other name is NumPy's: functions refuse host arrays and return device arrays;
    ufuncs, dtypes and constants are NumPy's own (device arrays handle ufuncs themselves)."""
    value = getattr(np, name)
    if isinstance(value, types.FunctionType) or (callable(value) and type(value).__name__ == "_ArrayFunctionDispatcher"):
        @functools.wraps(value)
        def on_device(*args, **kwargs):
            _refuse_host(args, f"cupy.{name}")
            _refuse_host(kwargs.values(), f"cupy.{name}")
            operations.append(name)
            out = kwargs.get("out")
            result = value(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()})
            return out if isinstance(out, DeviceArray) else _device(result)
        return on_device
    return value


# ---------------------------------------------------------------- the device and its pools
class _Runtime:
    """``cupy.cuda.runtime`` for one device with :data:`MULTIPROCESSORS` multiprocessors."""

    @staticmethod
    def getDevice():
        return 0

    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def memGetInfo():
        return 8 << 30, 16 << 30

    @staticmethod
    def runtimeGetVersion():
        return 0

    @staticmethod
    def driverGetVersion():
        return 0

    @staticmethod
    def getDeviceProperties(device_id):
        return {"name": b"host harness", "major": 0, "minor": 0,
                "multiProcessorCount": MULTIPROCESSORS, "totalGlobalMem": 16 << 30}


class Device:
    """``cupy.cuda.Device``: the one host device."""

    def __init__(self, device_id=0):
        self.id = int(device_id)
        self.attributes = {"MultiProcessorCount": MULTIPROCESSORS}

    def synchronize(self):
        """Explicit synchronisation (not an implicit one): the harness runs launches eagerly."""

    def use(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Pool:
    def free_all_blocks(self):
        return None

    def free_bytes(self):
        return 0

    def used_bytes(self):
        return 0


_memory_pool, _pinned_pool = _Pool(), _Pool()


def get_default_memory_pool():
    return _memory_pool


def get_default_pinned_memory_pool():
    return _pinned_pool


cuda = types.SimpleNamespace(runtime=_Runtime(), Device=Device,
                             curand=types.SimpleNamespace(CURAND_RNG_PSEUDO_PHILOX4_32_10=101))
_core = types.SimpleNamespace(set_reduction_accelerators=lambda names: None,
                              set_routine_accelerators=lambda names: None)


class _RandomState:
    """``cupy.random.RandomState`` drawing on the host from NumPy's Philox (a device stream of
    its own on a GPU: the values differ from cuRAND's, the interface is the same)."""

    def __init__(self, seed=None, method=None):
        self.seed(seed)

    def seed(self, seed=None):
        self._generator = np.random.Generator(np.random.Philox(seed))

    def random_sample(self, size=None, dtype=float):
        return _device(self._generator.random(size=size, dtype=np.dtype(dtype)))


random = types.SimpleNamespace(RandomState=_RandomState)


# ---------------------------------------------------------------- cupyx
def _empty_pinned(shape, dtype=np.float32):
    return np.empty(shape, dtype=dtype).view(PinnedArray)


#: The stand-in ``cupyx`` module (``cupyx.empty_pinned``).
cupyx = types.ModuleType("cupyx")
cupyx.empty_pinned = _empty_pinned
cupyx.zeros_pinned = lambda shape, dtype=np.float32: np.zeros(shape, dtype=dtype).view(PinnedArray)

