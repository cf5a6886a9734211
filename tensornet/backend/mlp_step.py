"""The NumPy backend's compiled whole training step of a Dense network with SGD or Adam, as a
callable: :func:`compiled_mlp_step` says whether it can run now and returns a :class:`MlpStep`,
which calls :func:`._numba_step_call.mlp_train_step` on MKL's GEMM and the shared thread pool.
:mod:`.numpy_whole_step` decides which models it trains.
"""
from __future__ import annotations

import numpy

from .blas_threads import SMALL_PRODUCT_MACS

_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))


def compiled_mlp_step(ops, dtype, largest_macs):
    """``(MlpStep, None)`` for the NumPy backend ``ops``, or ``(None, reason)``: the step runs
    only inside a loop (``ops.start()``), with Numba's kernels, with MKL on the shared pool, on
    float32 or float64, and where the step's largest product (``largest_macs`` multiply-adds)
    is large enough to thread (``SMALL_PRODUCT_MACS``: smaller models keep BLAS on one thread
    and the layered step)."""
    dtype = numpy.dtype(dtype)
    if dtype not in _FLOATS:
        return None, f"the model's dtype is {dtype}, not float32 or float64"
    if ops.accelerator != "numba":
        return None, f"Numba's kernels are not in use ({ops._kernel_setting})"
    blas_threads = ops._blas_threads
    if not blas_threads.in_loop:
        return None, "the compiled step runs only inside fit"
    if largest_macs < SMALL_PRODUCT_MACS:
        return None, (f"the largest product has {largest_macs} multiply-adds, below {SMALL_PRODUCT_MACS}: "
                      "BLAS stays on one thread and the layered step is the faster one")
    blas_threads.for_product(largest_macs)  # shares the pool with MKL where possible
    mkl = blas_threads.mkl
    if mkl is None:
        return None, f"MKL is not running on the shared pool ({blas_threads.reason or 'not loaded'})"
    return MlpStep(blas_threads, mkl.addresses[dtype.char], dtype), None


class MlpStep:
    """``run(x, target, params, grads, table, acts, dz, probs, rule, update=True)``: one training
    step of the network in ``table`` (the arrays of :func:`._numba_step_call.mlp_train_step`) with the
    update the optimizer's description ``rule`` names -- SGD (``momentum``, ``nesterov``,
    ``weight_decay``, its ``velocity``, which may be None without momentum) or Adam (``beta_1``,
    ``beta_2``, ``epsilon``, its ``m`` and ``v``; ``alpha`` from the step count ``rule["t"]``) --
    at learning rate ``rule["lr"]``, returning the batch's loss sum in ``dtype``; ``target`` is
    (B, classes) in ``dtype`` or (B,) int64 labels. ``while_waiting`` runs, on the first call
    only, while a child process compiles part of the step (``_numba_step.callbacks``). The
    scalars reach the kernel as float64 and are cast to the dtype there, as
    :class:`NumpyBackend`'s update kernels receive them. ``ready`` is False once the pool is no
    longer shared (a forked child, where a parallel region would abort: the caller then takes
    the layered step)."""

    def __init__(self, blas_threads, gemm, dtype):
        from . import _numba_step, _numba_step_call

        self._kernel, self._blas_threads, self._gemm = _numba_step_call.mlp_train_step, blas_threads, gemm
        self._adam = _numba_step.ADAM
        self._cast, self._tiny = dtype.type, float(numpy.finfo(dtype).tiny)
        self._losses = numpy.zeros(blas_threads.threads)
        self._floats = numpy.zeros(len(_numba_step.FLOAT_SLOTS))
        self._no_labels, self._no_targets = numpy.zeros(0, numpy.int64), numpy.zeros((0, 0), dtype)
        self._blocks = {}  # the kernel's argument blocks, one per set of arrays (_numba_step_call)

    @property
    def ready(self) -> bool:
        return self._blas_threads.mkl is not None  # MKL's GEMM is set only while the pool is shared

    def __call__(self, x, target, params, grads, table, acts, dz, probs, rule, update=True,
                 while_waiting=None):
        sparse = target.ndim == 1
        targets, labels = (self._no_targets, target) if sparse else (target, self._no_labels)
        floats, lr = self._floats, rule["lr"]
        if rule["rule"] == "adam":
            b1, b2, t = rule["beta_1"], rule["beta_2"], rule["t"]
            alpha = lr * (1.0 - b2 ** (t + 1)) ** 0.5 / (1.0 - b1 ** (t + 1))  # as NumpyBackend.adam_update
            floats[4:] = (alpha, b1, 1.0 - b1, b2, 1.0 - b2, rule["epsilon"])
            code, state, has_decay = self._adam, (rule["m"], rule["v"]), False
        else:
            momentum = rule["momentum"]
            floats[:4] = (lr, momentum, rule["weight_decay"], self._tiny)
            code = 0 if not momentum else (2 if rule["nesterov"] else 1)
            state, has_decay = (params if rule["velocity"] is None else rule["velocity"],), bool(rule["weight_decay"])
        total = self._kernel(self._gemm, x, targets, labels, sparse, params, grads, table, acts, dz, probs,
                             self._losses, code, floats, state, self._blocks, has_decay, update, while_waiting)
        return self._cast(total)
