"""The GPU backend: the reference operations of :class:`Backend` on CuPy, plus fused kernels.

Every method of :class:`Backend` works here unchanged with ``xp = cupy``; this class
overrides the ones where one custom kernel saves passes over memory:

- ``bias_activation`` (bias add + activation in one pass) and ``backprop_<act>``
  (``dy * f'(y)`` in one pass), from ``kernels/activations.cu``; with softmax, the output
  layer's bias add + softmax in one launch from ``kernels/softmax_cross_entropy.cu``;
- ``softmax_cross_entropy`` (loss, gradient and, optionally, the number of correct
  predictions in one launch), from ``kernels/softmax_cross_entropy.cu``;
- every ``<optimizer>_update`` (one launch over the whole flat parameter buffer), from
  ``kernels/optimizers.cu`` (:mod:`.cupy_optimizers`);

and ``matmul`` (cuBLAS through ``cupy.matmul``), the host/device transfers and
``device_info``. The kernels are written in the same order of operations as the NumPy
reference (see the ``.cu`` headers); ``tests/test_backend_cupy.py`` checks each against it.

Kernel inputs are validated before every launch (array type, dtype, C-contiguity, shape) and a
violation raises ValueError naming the argument; empty arrays launch nothing. This module
imports CuPy at import time: :mod:`.selection` imports it only once ``cupy_status()`` says
CuPy, a driver and a device are present.

Every launch goes through one method, :meth:`CupyBackend._kernel` (the launcher seam): the CPU
tests load this module with a NumPy stand-in for ``cupy`` and point the seam at the host
harness that runs the same ``.cu`` sources, so this module's dispatch, argument packing, grid
sizes and name expressions run ``fit`` end to end without a GPU (docs/testing-gpu-path.md).
"""
from __future__ import annotations

import numpy
import cupy
import cupyx

from . import config, kernels
from .base import Backend
from .cupy_conv import CupyConvOps
from .cupy_optimizers import CupyOptimizerOps

#: Threads per block of every launch (a multiple of the warp size).
BLOCK_SIZE = 256
#: Elementwise grids are capped at this many blocks per multiprocessor (grid-stride loops).
BLOCKS_PER_SM = 32
#: Blocks per multiprocessor for the one-warp-per-row softmax kernel.
ROW_BLOCKS_PER_SM = 8


def _version(number: int) -> str:
    """CUDA's 12040 -> "12.4"."""
    return f"{number // 1000}.{(number % 1000) // 10}"


def use_plain_reductions():
    """Deterministic mode: CuPy's own fixed-order reduction kernels, not the optional CUB or
    cuTENSOR accelerators that ``CUPY_ACCELERATORS`` may select."""
    cupy._core.set_reduction_accelerators([])
    cupy._core.set_routine_accelerators([])


class CupyBackend(CupyOptimizerOps, CupyConvOps, Backend):
    """Runs every operation on the current CUDA device with CuPy, with fused kernels for the
    activations, the softmax cross-entropy and the optimizer updates."""

    name = "cupy"
    xp = cupy
    #: The fused kernels are instantiated for float and double only (``kernels.float_ctype``).
    parameter_dtypes = tuple(kernels.FLOAT_CTYPES)

    def __init__(self):
        super().__init__()
        self._sm_counts: dict[int, int] = {}
        self._done_counters: dict[int, object] = {}
        self._dropout_random = None
        if config.deterministic():
            use_plain_reductions()

    # ------------------------------------------------------------------ arrays
    def to_numpy(self, x):
        """Return ``x`` as a host NumPy array (a device-to-host copy for CuPy arrays)."""
        return cupy.asnumpy(x)

    def to_float(self, x) -> float:
        """A 0-d array (or scalar) as a Python float; synchronises with the device."""
        if isinstance(x, cupy.ndarray):
            return float(x.item())
        return float(x)

    def is_array(self, x) -> bool:
        """True when ``x`` is a ``cupy.ndarray``."""
        return isinstance(x, cupy.ndarray)

    def memory_budget(self):
        """Half of the device memory that is free now (the driver's free bytes plus what CuPy's
        pool holds unused): ``fit`` streams data sets larger than this in chunks."""
        return int(0.5 * self.free_memory())

    def is_out_of_memory(self, exc) -> bool:
        """CuPy's ``OutOfMemoryError`` (a MemoryError), or a CUDA or cuBLAS error that reports a
        failed allocation."""
        if isinstance(exc, MemoryError):
            return True
        text = str(exc)
        return isinstance(exc, RuntimeError) and any(
            marker in text for marker in ("ALLOC_FAILED", "cudaErrorMemoryAllocation", "out of memory"))

    def release_memory(self):
        """Drop scratch buffers and free every unused block of CuPy's device and pinned pools."""
        super().release_memory()
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()

    def free_memory(self):
        """Free device bytes: the driver's free memory plus what CuPy's pool holds unused."""
        free, _ = cupy.cuda.runtime.memGetInfo()
        return int(free + cupy.get_default_memory_pool().free_bytes())

    def host_buffer(self, shape, dtype="float32"):
        """A page-locked host array (``cupyx.empty_pinned``): host-to-device copies from it run
        at full PCIe speed without an intermediate copy."""
        return cupyx.empty_pinned(shape, dtype=dtype)

    def to_device(self, x, out=None):
        """Copy the host array ``x`` to the device (into ``out`` when given, with ``out.set``)."""
        if out is None:
            return cupy.asarray(x)
        if tuple(out.shape) != tuple(x.shape) or out.dtype != x.dtype:
            raise ValueError(f"to_device: out is {out.dtype}{tuple(out.shape)}, x is {x.dtype}{tuple(x.shape)}")
        out.set(x)
        return out

    def synchronize(self):
        """Wait until every queued kernel and copy on the current device has finished."""
        cupy.cuda.Device().synchronize()

    def device_info(self) -> dict:
        """Name, compute capability, memory and versions of the current CUDA device."""
        runtime = cupy.cuda.runtime
        device_id = runtime.getDevice()
        props = runtime.getDeviceProperties(device_id)
        name = props.get("name", b"")
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        return {
            "device": f"cuda:{device_id}",
            "name": name,
            "compute_capability": f"{props['major']}.{props['minor']}",
            "multiprocessors": int(props.get("multiProcessorCount", 0)),
            "total_memory_bytes": int(props.get("totalGlobalMem", 0)),
            "total_memory_gib": round(int(props.get("totalGlobalMem", 0)) / 2**30, 2),
            "cuda_runtime": _version(runtime.runtimeGetVersion()),
            "cuda_driver": _version(runtime.driverGetVersion()),
            "cupy": cupy.__version__,
        }

    # ------------------------------------------------------------------ random
    def dropout_mask(self, rng, shape, rate, dtype="float32", out=None):
        """Inverted-dropout mask drawn on the device: 1 / (1 - rate) where u >= rate, else 0,
        with u ~ U[0, 1) from cuRAND's Philox generator seeded by one draw of the host ``rng``.

        The mask never crosses the bus (no per-step host copy, hence no synchronisation), and
        it is a function of ``rng``'s state, so save/resume reproduces it exactly. The stream
        differs from the NumPy backend's (which draws on the host with ``rng`` itself).
        """
        seed = int(rng.integers(0, 2**63 - 1))
        if self._dropout_random is None:
            self._dropout_random = cupy.random.RandomState(
                seed, method=cupy.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
        else:
            self._dropout_random.seed(seed)
        uniform = self._dropout_random.random_sample(size=tuple(shape), dtype=numpy.dtype(dtype))
        if out is None:
            out = cupy.empty(tuple(shape), dtype=dtype)
        cupy.greater_equal(uniform, rate, out=out)
        out *= 1.0 / (1.0 - rate)
        return out

    # ------------------------------------------------------------------ linear algebra
    def matmul(self, a, b, out=None, trans_a=False, trans_b=False):
        """``op(a) @ op(b)`` through cuBLAS (the base's ``xp.matmul``), into ``out`` when given;
        ValueError when ``out``'s dtype is not the product's (CuPy would cast silently)."""
        if out is not None and out.dtype != numpy.result_type(a.dtype, b.dtype):
            raise ValueError(f"matmul: out has dtype {out.dtype}, the product is "
                             f"{numpy.result_type(a.dtype, b.dtype)}")
        return super().matmul(a, b, out=out, trans_a=trans_a, trans_b=trans_b)

    def bias_activation(self, z, bias, activation, out=None, alpha=0.0):
        """``z += bias`` in place, then ``out = activation(z)``, in one kernel for linear, relu,
        leaky_relu, sigmoid and tanh, and for softmax over the rows of a 2-D ``z`` (others: the
        base's two steps); returns ``out``."""
        if activation == "softmax" and getattr(z, "ndim", 0) == 2:
            return self._bias_softmax(z, bias, out)
        act = kernels.ACTIVATION_STRUCTS.get(activation)
        if act is None:
            return super().bias_activation(z, bias, activation, out=out, alpha=alpha)
        where = "bias_activation"
        ctype = self._check_float(z, "z", where)
        if z.ndim < 1:
            raise ValueError(f"{where}: z must have at least one dimension, got a 0-d array")
        features = z.shape[-1]
        self._check_like(bias, "bias", z, "z", where, shape=(features,))
        if out is None:
            out = z if activation == "linear" else self.xp.empty_like(z)
        else:
            self._check_like(out, "out", z, "z", where)
        if z.size:
            t = z.dtype.type
            self._launch_elementwise("activations", f"bias_activation<{ctype}, {act}>", z.size,
                                     (z, bias, out, numpy.int64(features), t(alpha)))
        return out

    def _bias_softmax(self, z, bias, out):
        """The output layer's forward pass, ``z += bias; out = softmax(z)`` row by row, in one
        launch of ``bias_activation_softmax`` (one warp per row, the softmax cross-entropy's
        grid) instead of the reference's six (bias add, max, subtract, exp, sum, divide)."""
        where = "bias_activation"
        ctype = self._check_float(z, "z", where)
        rows, cols = z.shape
        self._check_like(bias, "bias", z, "z", where, shape=(cols,))
        if out is None:
            out = self.xp.empty_like(z)
        else:
            self._check_like(out, "out", z, "z", where)
        if z.size:
            self._launch("softmax_cross_entropy", f"bias_activation_softmax<{ctype}>", self._row_blocks(rows),
                         (numpy.int64(rows), numpy.int64(cols), z, bias, out))
        return out

    # ------------------------------------------------------------------ activations (backward)
    def backprop_relu(self, dy, y, out=None):
        """f'(x) = 1[y > 0], times ``dy``, in one kernel."""
        return self._backprop("relu", dy, y, out, 0.0)

    def backprop_leaky_relu(self, dy, y, alpha, out=None):
        """f'(x) = 1 where y > 0, alpha elsewhere, times ``dy``, in one kernel."""
        return self._backprop("leaky_relu", dy, y, out, alpha)

    def backprop_sigmoid(self, dy, y, out=None):
        """f'(x) = (1 - y) y, times ``dy``, in one kernel."""
        return self._backprop("sigmoid", dy, y, out, 0.0)

    def backprop_tanh(self, dy, y, out=None):
        """f'(x) = 1 - y^2, times ``dy``, in one kernel."""
        return self._backprop("tanh", dy, y, out, 0.0)

    def _backprop(self, activation, dy, y, out, alpha):
        where = f"backprop_{activation}"
        ctype = self._check_float(dy, "dy", where)
        self._check_like(y, "y", dy, "dy", where)
        if out is None:
            out = self.xp.empty_like(dy)
        else:
            self._check_like(out, "out", dy, "dy", where)
        if dy.size:
            act = kernels.ACTIVATION_STRUCTS[activation]
            self._launch_elementwise("activations", f"activation_backward<{ctype}, {act}>",
                                     dy.size, (dy, y, out, dy.dtype.type(alpha)))
        return out

    # ------------------------------------------------------------------ fused output losses
    def softmax_cross_entropy(self, logits, probs, target, grad_out, sparse=False):
        """Fused softmax + categorical cross-entropy in one kernel (see the base for the
        formulas): returns the 0-d batch loss sum and writes (p * sum_j t_j - t) / N into
        ``grad_out``. A label outside [0, C) gives a NaN loss and NaN gradient row."""
        loss, _ = self._softmax_cross_entropy(logits, probs, target, grad_out, sparse, False)
        return loss

    def softmax_cross_entropy_count(self, logits, probs, target, grad_out, sparse=False):
        """As :meth:`softmax_cross_entropy`, also returning the number of rows where
        argmax(probs) equals the target's argmax (or label), counted in the same pass:
        ``(loss, correct)``, both 0-d device arrays (``correct`` is int64), no host sync.
        This matches ``count_correct(probs, target, "categorical" / "sparse")``."""
        return self._softmax_cross_entropy(logits, probs, target, grad_out, sparse, True)

    def _softmax_cross_entropy(self, logits, probs, target, grad_out, sparse, count):
        where = "softmax_cross_entropy"
        ctype = self._check_float(logits, "logits", where)
        if logits.ndim != 2:  # the kernel takes (batch, classes); others go through the reference
            if count:
                return super().softmax_cross_entropy_count(logits, probs, target, grad_out, sparse=sparse)
            loss = super().softmax_cross_entropy(logits, probs, target, grad_out, sparse=sparse)
            return loss, None
        rows, cols = logits.shape
        self._check_like(probs, "probs", logits, "logits", where)
        self._check_like(grad_out, "grad_out", logits, "logits", where)
        if sparse:
            target = self._labels(target, rows, where)
            label_ctype = kernels.LABEL_CTYPES[target.dtype.name]
            name = f"sparse_softmax_cross_entropy<{ctype}, {label_ctype}>"
        else:
            self._check_like(target, "target", logits, "logits", where)
            name = f"softmax_cross_entropy<{ctype}>"
        loss = self.xp.zeros((), dtype=logits.dtype)
        correct = self.xp.zeros((), dtype=numpy.int64) if count else None
        if rows == 0:
            return loss, correct
        if cols == 0:
            raise ValueError(f"{where}: logits has {rows} rows but no columns")
        blocks = self._row_blocks(rows)
        partial_loss = self.scratch("sce_partial_loss", (blocks,), numpy.float64)
        partial_correct = self.scratch("sce_partial_correct", (blocks,), numpy.int64)
        correct_out = correct if count else self.scratch("sce_correct", (), numpy.int64)
        args = (numpy.int64(rows), numpy.int64(cols), logits, probs, target, grad_out,
                logits.dtype.type(1.0 / rows), numpy.int32(bool(count)),
                partial_loss, partial_correct, self._done_counter(), loss, correct_out)
        self._launch("softmax_cross_entropy", name, blocks, args)
        return loss, correct

    def _labels(self, labels, rows, where):
        """Integer labels as a contiguous int32/int64 vector of ``rows`` entries."""
        if not isinstance(labels, self.xp.ndarray):
            raise ValueError(f"{where}: target must be a {self.xp.__name__} array of integer "
                             f"labels, got {type(labels).__name__}")
        if labels.dtype.kind not in "iu":
            raise ValueError(f"{where}: target must hold integer labels when sparse=True, got "
                             f"dtype {labels.dtype}")
        if labels.size != rows or (labels.ndim > 1 and labels.shape[0] != rows):
            raise ValueError(f"{where}: target must hold one label per row ({rows}), got shape "
                             f"{labels.shape}")
        if labels.dtype.name not in kernels.LABEL_CTYPES:
            labels = labels.astype(numpy.int64)
        if not labels.flags.c_contiguous:
            raise ValueError(f"{where}: target must be C-contiguous")
        return labels.reshape(rows)

    # ------------------------------------------------------------------ validation
    def _check_float(self, x, argument, where) -> str:
        """The kernel type name of ``x`` (float / double); ValueError unless ``x`` is a
        C-contiguous float32 or float64 array of this backend."""
        if not isinstance(x, self.xp.ndarray):
            raise ValueError(f"{where}: {argument} must be a {self.xp.__name__} array, got "
                             f"{type(x).__name__}")
        if x.dtype.name not in kernels.FLOAT_CTYPES:
            raise ValueError(f"{where}: {argument} must be float32 or float64, got {x.dtype}")
        if not x.flags.c_contiguous:
            raise ValueError(f"{where}: {argument} must be C-contiguous")
        return kernels.FLOAT_CTYPES[x.dtype.name]

    def _check_like(self, x, argument, like, like_name, where, shape=None):
        """ValueError unless ``x`` is a C-contiguous array of ``like``'s dtype and of ``shape``
        (default: ``like``'s shape)."""
        if x is None:
            raise ValueError(f"{where}: {argument} is required here, got None")
        if not isinstance(x, self.xp.ndarray):
            raise ValueError(f"{where}: {argument} must be a {self.xp.__name__} array, got "
                             f"{type(x).__name__}")
        if x.dtype != like.dtype:
            raise ValueError(f"{where}: {argument} has dtype {x.dtype}, {like_name} has "
                             f"{like.dtype}")
        expected = like.shape if shape is None else tuple(shape)
        if x.shape != expected:
            raise ValueError(f"{where}: {argument} has shape {x.shape}, expected {expected}")
        if not x.flags.c_contiguous:
            raise ValueError(f"{where}: {argument} must be C-contiguous")

    def _check_update(self, where, w, g):
        ctype = self._check_float(w, "w", where)
        self._check_like(g, "g", w, "w", where)
        return ctype, w.dtype.type

    # ------------------------------------------------------------------ launching
    def _launch_update(self, where, ctype, w, args):
        if w.size:
            self._launch_elementwise("optimizers", f"{where}<{ctype}>", w.size, args)

    def _launch_elementwise(self, family, name, n, args):
        """Launch a grid-stride kernel over ``n`` elements with arguments ``(n, *args)``."""
        blocks = min(-(-n // BLOCK_SIZE), BLOCKS_PER_SM * self._multiprocessors())
        self._launch(family, name, blocks, (numpy.int64(n),) + tuple(args))

    def _launch(self, family, name, blocks, args):
        """Every kernel launch of this backend: ``blocks`` blocks of BLOCK_SIZE threads."""
        self._kernel(family, name)((int(blocks),), (BLOCK_SIZE,), args)

    def _kernel(self, family, name_expression):
        """The launcher seam: the one place a kernel is fetched, as a callable
        ``kernel(grid, block, args)`` (``cupy.RawKernel.__call__``). Here the NVRTC build of
        ``kernels/<family>.cu`` (:func:`.kernels.get_kernel`); the CPU tests substitute the host
        harness's build of the same source (``tests/cuda_harness/backend.py``)."""
        return kernels.get_kernel(family, name_expression)

    def _row_blocks(self, rows):
        """Grid size of a one-warp-per-row launch over ``rows`` rows (grid-stride beyond it)."""
        return min(-(-rows // (BLOCK_SIZE // 32)), ROW_BLOCKS_PER_SM * self._multiprocessors())

    def _multiprocessors(self) -> int:
        device_id = cupy.cuda.runtime.getDevice()
        count = self._sm_counts.get(device_id)
        if count is None:
            count = cupy.cuda.Device(device_id).attributes["MultiProcessorCount"]
            self._sm_counts[device_id] = count
        return count

    def _done_counter(self):
        """The softmax kernel's zero-initialised completion counter on the current device (the
        kernel's last block resets it to 0)."""
        device_id = cupy.cuda.runtime.getDevice()
        counter = self._done_counters.get(device_id)
        if counter is None:
            counter = cupy.zeros((), dtype=numpy.uint32)
            self._done_counters[device_id] = counter
        return counter
