"""Run the exact CUDA sources of ``kernels/*.cu`` on the CPU: a host build with a CUDA device
environment, launched over NumPy arrays through ctypes.

    module = load_family("optimizers")                 # kernels/optimizers.cu
    kernel = module.get_function("sgd_update<float>")  # an NVRTC name expression
    kernel((blocks,), (256,), (np.int64(n), w, g, ...))  # as cupy.RawKernel.__call__

How it works
------------
Each family's text, exactly as :func:`tensornet.backend.kernels.read_source` hands it to NVRTC,
is compiled by g++ with ``cuda_host.h`` force-included (``-include``): it defines ``__global__``
and friends, ``threadIdx`` / ``blockIdx`` / ``blockDim`` / ``gridDim``, ``__shared__``,
``__syncthreads``, the warp shuffles and votes, ``atomicAdd`` and ``__threadfence``. A generated
wrapper takes the address of every name expression of the family (the list in
:data:`tensornet.backend.kernels.FAMILIES`) and exports a launcher ``(grid, block, void** args)``
that unpacks the arguments into the kernel's own parameter types, plus the parameter types
themselves, against which every call's arguments are checked (a float64 scalar where the kernel
takes a float is a TypeError, as is a float64 array for a ``float*``). The built library is
cached by the hash of its sources and flags (``$TENSORNET_HARNESS_CACHE``, default a directory
under the system temp dir).

- Threads are fibers (ucontext): a block's threads run one after another on one OS thread and
  switch only at ``__syncthreads`` and at the warp-wide exchange inside every shuffle or vote.
  A thread therefore runs as far as it can before any other thread of its block runs, in
  increasing thread order on one launch and decreasing order on the next, so a missing
  ``__syncthreads`` gives a wrong result on one of every two launches, deterministically: in
  one order a thread reads what a lower-numbered thread has not written yet, in the other what a
  higher-numbered one has not. A barrier is released only when every thread of the block (every
  lane of the warp, for a shuffle or vote) waits there; threads waiting at different barriers,
  or at one that others exited without reaching, are reported as a deadlock. ``__shared__``
  variables are per worker OS thread, i.e. per running block.
- Blocks run on several worker OS threads at once (``$TENSORNET_HARNESS_WORKERS``, default 4),
  in an order shuffled per launch (``$TENSORNET_HARNESS_SEED``), so blocks interleave and the
  last block to finish is a different one from launch to launch; the atomics are real.
- Out-of-bounds accesses: every array argument is copied into a buffer that ends exactly at an
  inaccessible page, with an inaccessible page before its first page and a canary between that
  page and the data. A read or write past the end (or a page or more before the start) faults;
  the fault ends the launch, not the process, and is raised as :class:`KernelFault` naming the
  argument; a write into the canary is found after the launch. This works inside the pytest
  process under ctypes, which AddressSanitizer does not (an ASan library needs libasan
  preloaded into the Python interpreter itself).

What it cannot show
-------------------
- Real warp scheduling: lanes run one at a time between warp exchanges, so it cannot show
  independent thread scheduling effects (Volta and later), divergence inside a warp, shuffles
  with partial masks (rejected), or a missing ``__syncwarp`` between plain shared-memory
  accesses of one warp.
- Memory-model effects beyond what barriers give: host atomics are sequentially consistent and
  x86 stores are ordered, so a missing ``__threadfence`` or ``volatile`` goes unnoticed; a data
  race between blocks shows only when the OS happens to interleave the workers that way.
- Speed, occupancy, register use, shared-memory bank conflicts, launch limits.
- NVRTC's own compilation: device intrinsics' precision (``expf``, ``tanhf`` here are glibc's),
  ``-ftz``/``--fmad`` flags, warnings; the nvcc compile check covers the compiler side.
- Reads in the few bytes between the leading guard page and an array's start.
- Dynamic (``extern __shared__``) shared memory: no kernel uses it; a non-zero ``shared_mem``
  is refused.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from tensornet.backend import kernels

HERE = Path(__file__).resolve().parent
CXX = os.environ.get("CXX", "g++")
FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", "-pthread", "-ffp-contract=off",
         "-fno-fast-math", "-w")
_RUNTIME_FILES = ("cuda_host.h", "cuda_launch.h", "cuda_runtime.cpp")
_PAGE = os.sysconf("SC_PAGESIZE")

__all__ = ["load_family", "load_source", "HarnessModule", "HarnessKernel", "KernelFault"]


class KernelFault(RuntimeError):
    """A kernel read or wrote outside its arguments, deadlocked, or otherwise failed."""


def cache_dir() -> Path:
    """Where built libraries are kept (``$TENSORNET_HARNESS_CACHE`` or under the temp dir)."""
    path = os.environ.get("TENSORNET_HARNESS_CACHE")
    directory = Path(path) if path else Path(tempfile.gettempdir()) / f"tensornet-cuda-harness-{os.getuid()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _wrapper(source_file: str, names) -> str:
    lines = [f'#include "{source_file}"', '#include "cuda_launch.h"']
    for k, name in enumerate(names):
        lines.append(f"extern \"C\" int tn_launch_{k}(const unsigned* g, const unsigned* b, void** a) "
                     f"{{ return tn::launch(&{name}, g, b, a); }}")
        lines.append(f"static const std::string tn_signature_text_{k} = tn::signature(&{name});")
        lines.append(f"extern \"C\" const char* tn_signature_{k}() "
                     f"{{ return tn_signature_text_{k}.c_str(); }}")
    return "\n".join(lines) + "\n"


def _build(label: str, text: str, names: tuple[str, ...]) -> Path:
    """Compile ``text`` (a .cu source) with the wrapper of ``names``; return the .so (cached)."""
    digest = hashlib.sha256()
    for part in (CXX, *FLAGS, text, *names, *[(HERE / f).read_text() for f in _RUNTIME_FILES]):
        digest.update(part.encode())
        digest.update(b"\0")
    key = digest.hexdigest()[:20]
    directory = cache_dir()
    library = directory / f"{label}-{key}.so"
    if library.exists():
        return library
    source = directory / f"{label}-{key}.cu"
    source.write_text(text, encoding="utf-8")
    wrapper = directory / f"{label}-{key}.wrapper.cpp"
    wrapper.write_text(_wrapper(source.name, names), encoding="utf-8")
    partial = directory / f"{label}-{key}.{os.getpid()}.{threading.get_ident()}.so"
    command = [CXX, *FLAGS, "-include", str(HERE / "cuda_host.h"), "-I", str(HERE),
               "-I", str(directory), "-x", "c++", str(wrapper), str(HERE / "cuda_runtime.cpp"),
               "-o", str(partial)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"host build of {label} failed:\n{' '.join(command)}\n{proc.stderr}")
    os.replace(partial, library)
    return library


_modules: dict = {}
_lock = threading.Lock()


def load_family(family: str) -> "HarnessModule":
    """The host build of ``kernels/<family>.cu`` with every name expression the backend
    declares for it (built once per source hash)."""
    return load_source(family, kernels.read_source(family), kernels.name_expressions(family))


def load_source(label: str, text: str, names) -> "HarnessModule":
    """The host build of the CUDA source ``text`` with the kernels ``names`` (name expressions)."""
    names = tuple(names)
    with _lock:
        key = (label, text, names)
        module = _modules.get(key)
        if module is None:
            module = HarnessModule(label, _build(label, text, names), names)
            _modules[key] = module
    return module


class HarnessModule:
    """A built family: :meth:`get_function` as ``cupy.RawModule.get_function``."""

    def __init__(self, label: str, library: Path, names: tuple[str, ...]):
        self.label = label
        self.names = names
        self._lib = ctypes.CDLL(str(library))
        self._lib.tn_last_error.restype = ctypes.c_char_p
        self._lib.tn_fault_address.restype = ctypes.c_ulonglong
        self._lib.tn_guarded_alloc.restype = ctypes.c_void_p
        self._lib.tn_guarded_alloc.argtypes = [ctypes.c_size_t]
        self._lib.tn_guarded_check.restype = ctypes.c_longlong
        self._lib.tn_guarded_check.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._lib.tn_guarded_free.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

    def get_function(self, name_expression: str) -> "HarnessKernel":
        if name_expression not in self.names:
            raise KeyError(f"{name_expression!r} is not a kernel of {self.label}; built: "
                           f"{', '.join(self.names)}")
        k = self.names.index(name_expression)
        launch = getattr(self._lib, f"tn_launch_{k}")
        launch.restype = ctypes.c_int
        launch.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                           ctypes.POINTER(ctypes.c_void_p)]
        signature = getattr(self._lib, f"tn_signature_{k}")
        signature.restype = ctypes.c_char_p
        params = tuple(p for p in signature().decode().split(",") if p)
        return HarnessKernel(self, name_expression, launch, params)


_launch_lock = threading.Lock()  # one launch at a time: the signal handler is process-wide


class HarnessKernel:
    """One kernel; ``kernel(grid, block, args, shared_mem=0)`` as ``cupy.RawKernel.__call__``.

    ``params`` are the kernel's parameter types as dtype names, ``"*float32"`` for a pointer.
    """

    def __init__(self, module: HarnessModule, name: str, launch, params: tuple[str, ...]):
        self.module = module
        self.name = name
        self.params = params
        self._launch = launch

    def _dims(self, what, dims):
        dims = tuple(int(d) for d in (dims if isinstance(dims, (tuple, list)) else (dims,)))
        if not 1 <= len(dims) <= 3 or any(d < 1 for d in dims):
            raise ValueError(f"{self.name}: {what} must be 1 to 3 positive sizes, got {dims}")
        return dims + (1,) * (3 - len(dims))

    def _scalar(self, k, value, expected):
        if isinstance(value, np.generic):
            dtype = value.dtype
        elif isinstance(value, bool):
            dtype = None
        elif isinstance(value, int):
            dtype = np.dtype(np.int64)  # what CuPy passes for a Python int
        elif isinstance(value, float):
            dtype = np.dtype(np.float64)  # what CuPy passes for a Python float
        else:
            dtype = None
        if dtype is None or dtype.name != expected:
            got = dtype.name if dtype is not None else type(value).__name__
            raise TypeError(f"{self.name}: argument {k} must be a {expected} scalar (the kernel "
                            f"parameter's type), got {got}")
        return np.array(value, dtype=dtype)

    def __call__(self, grid, block, args, shared_mem: int = 0):
        grid = self._dims("grid", grid)
        block = self._dims("block", block)
        if block[0] * block[1] * block[2] > 1024:
            raise ValueError(f"{self.name}: {block} is more than 1024 threads per block")
        if shared_mem:
            raise ValueError(f"{self.name}: dynamic shared memory is not modelled by the harness")
        args = tuple(args)
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments "
                            f"({', '.join(self.params)}), got {len(args)}")
        lib = self.module._lib
        keep, guarded, regions = [], {}, []
        pointers = (ctypes.c_void_p * len(args))()
        try:
            for k, (value, expected) in enumerate(zip(args, self.params)):
                if expected.startswith("*"):
                    if not isinstance(value, np.ndarray):
                        raise TypeError(f"{self.name}: argument {k} must be a {expected[1:]} "
                                        f"array, got {type(value).__name__}")
                    if value.dtype.name != expected[1:]:
                        raise TypeError(f"{self.name}: argument {k} must be a {expected[1:]} "
                                        f"array, got {value.dtype}")
                    if not value.flags.c_contiguous:
                        raise TypeError(f"{self.name}: argument {k} must be C-contiguous")
                    where = (value.ctypes.data, value.nbytes)
                    if where not in guarded:
                        for (start, size), _ in guarded.items():
                            if start < where[0] + where[1] and where[0] < start + size:
                                raise ValueError(f"{self.name}: argument {k} partly overlaps "
                                                 "another argument")
                        data = lib.tn_guarded_alloc(value.nbytes)
                        if not data:
                            raise MemoryError(f"{self.name}: cannot map a guarded buffer")
                        ctypes.memmove(data, value.ctypes.data, value.nbytes)
                        guarded[where] = (data, value)
                        regions.append((k, data, value.nbytes))
                    cell = ctypes.c_void_p(guarded[where][0])
                else:
                    holder = self._scalar(k, value, expected)
                    keep.append(holder)
                    cell = ctypes.c_void_p(holder.ctypes.data)
                keep.append(cell)
                pointers[k] = ctypes.addressof(cell) if expected.startswith("*") else cell.value
            with _launch_lock:
                rc = self._launch((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), pointers)
                message = lib.tn_last_error().decode() if rc else ""
                fault = lib.tn_fault_address() if rc else 0
            if rc:
                raise KernelFault(f"{self.name} grid={grid} block={block}: {message}"
                                  f"{self._blame(fault, regions) if 'segmentation' in message else ''}")
            for k, data, nbytes in regions:
                bad = lib.tn_guarded_check(data, nbytes)
                if bad:
                    raise KernelFault(f"{self.name}: argument {k} ({self.params[k]}): {bad} bytes "
                                      "before its start were written")
            for data, value in guarded.values():
                ctypes.memmove(value.ctypes.data, data, value.nbytes)
        finally:
            for data, value in guarded.values():
                lib.tn_guarded_free(data, value.nbytes)

    def _blame(self, address, regions):
        for k, data, nbytes in regions:
            pages = -(-nbytes // _PAGE)
            if data + nbytes <= address < data + nbytes + _PAGE:
                return (f": argument {k} ({self.params[k]}, {nbytes} bytes) accessed "
                        f"{address - data - nbytes} bytes past its end")
            if data + nbytes - (pages + 1) * _PAGE <= address < data:
                return (f": argument {k} ({self.params[k]}, {nbytes} bytes) accessed "
                        f"{data - address} bytes before its start")
        return ": outside every argument"
