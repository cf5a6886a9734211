"""The CPU backend: the reference operations of :class:`Backend` on NumPy, with the hot paths
of a training step made lean.

Where Numba is installed (the ``fast`` extra) and ``TENSORNET_CPU_KERNELS`` is not ``numpy``,
the training step's element-wise work runs as fused one-pass loops (:mod:`._numba_kernels`,
each named after the method it implements), threaded over the cores for large buffers -- and,
inside fit / evaluate / predict, from ``shared_pool.PARALLEL_MIN`` elements, with the products on
the same threads (:mod:`.shared_pool`: MKL's GEMM with the ``mkl`` package, else NumPy's
OpenBLAS). Everywhere else, and for arrays a kernel does not take, a method falls back to the
base's reference (``super()``), which itself works through ``out=`` and scratch buffers, so a
step allocates no large array either way. What is overridden:

- ``matmul`` / ``matmuls``: the BLAS thread count per product (:mod:`.blas_threads`), MKL's
  GEMM on the arrays in place (:mod:`.cblas_params`), a layer's two backward products side
  by side, one pool thread each (with MKL only large ones), and with MKL one large product as
  two halves of its output side by side (``MKL_HALVES_MACS``);
- ``bias_activation`` (relu, softmax), ``backprop_relu``, ``softmax_cross_entropy``,
  ``count_correct`` (categorical) and ``dropout_mask``: one Numba pass each;
- ``take_rows`` into a batch buffer: NumPy's ``take`` writing in place;
- batch normalization's forward and backward and ``dropout_forward`` (mask and product from
  the same draws): one Numba call each (:mod:`.numpy_batch_norm`);
- im2col / col2im, pooling and a convolution's bias gradient: one Numba pass each
  (:mod:`.numpy_conv`);
- every ``<rule>_update``: one Numba pass over the flat buffers (:mod:`.numpy_optimizers`);
- ``training_step``: the whole step of a Dense network with SGD or Adam as one compiled call where it
  serves the model (:mod:`.numpy_whole_step`, :mod:`.mlp_step`, :mod:`._numba_step`).

Every override keeps :class:`Backend`'s signature and is tested against it on random inputs,
in both modes (``tests/test_backend_numpy.py``).
"""
from __future__ import annotations

import os

import numpy

from . import fast_path, huge_pages, mkl_blas, numpy_whole_step, shared_pool
from .base import Backend
from .blas_library import numpy_blas_controller
from .blas_threads import MKL_HALVES_MACS, MKL_SIDE_BY_SIDE_MACS, SMALL_PRODUCT_MACS, BlasThreads
from .cblas_params import blas_params, halves_params, side_by_side_params
from .numpy_batch_norm import NumpyBatchNormOps
from .numpy_conv import NumpyConvOps
from .numpy_optimizers import NumpyOptimizerOps

#: ``TENSORNET_CPU_KERNELS``: ``auto`` (Numba when it imports), ``numba`` (required) or ``numpy``.
KERNELS_ENV = "TENSORNET_CPU_KERNELS"

_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))


def _load_numba_kernels(mode):
    if mode == "numpy":
        return None
    try:
        from . import _numba_kernels
    except ImportError as exc:
        if mode == "numba":
            raise RuntimeError(f"{KERNELS_ENV}=numba but Numba cannot be imported ({exc}); "
                               f"{fast_path.numba_status()[2] or 'reinstall numba'} installs it") from None
        return None
    return _numba_kernels


class NumpyBackend(NumpyBatchNormOps, NumpyOptimizerOps, NumpyConvOps, Backend):
    """Runs every operation with NumPy on the host (BLAS for the matrix products)."""

    name = "numpy"
    xp = numpy

    def __init__(self):
        super().__init__()
        mode = os.environ.get(KERNELS_ENV, "auto").lower()
        if mode not in ("auto", "numba", "numpy"):
            raise ValueError(f"{KERNELS_ENV} must be auto, numba or numpy; got {mode!r}")
        mkl_blas.wanted()  # a bad TENSORNET_BLAS fails here, not at the first product
        self._kernel_mode = mode
        self._kernels_loaded = False
        self._nb = None
        self._blas_threads = BlasThreads(share_pool=lambda: self._kernels() is not None)
        self._loops = 0  # fit / evaluate / predict loops running (start() minus finish())

    # ------------------------------------------------------------------ kernel selection
    @property
    def accelerator(self) -> str:
        """``"numba"`` when the fused kernels are in use, ``"numpy"`` otherwise."""
        return "numba" if self._kernels() is not None else "numpy"

    def device_info(self) -> dict:
        """The CPU, its core count, NumPy's BLAS, which element-wise kernels run and how a loop
        shares threads between them and the products."""
        info = super().device_info()
        info["cores"] = os.cpu_count()
        info["numpy"] = numpy.__version__
        blas = numpy.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        info["blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
        info["cpu_kernels"] = self.accelerator
        if self.accelerator == "numba":
            info["cpu_threads"] = shared_pool.describe(numpy_blas_controller())
        return info

    def _set_kernels(self, mode):
        """Switch between ``"numba"``, ``"numpy"`` and ``"auto"`` (tests run both paths)."""
        self._blas_threads.restore()
        self._kernel_mode, self._kernels_loaded, self._nb = mode, False, None
        self._blas_threads = BlasThreads(share_pool=lambda: self._kernels() is not None)
        return self._kernels()

    @property
    def _kernel_setting(self) -> str:
        """Why Numba's kernels are not in use: the setting, or Numba missing (with the command)."""
        return fast_path.kernel_setting(self._kernel_mode)

    def faster_path_note(self):
        """The line ``fit`` prints when a missing package or a setting keeps the step off the
        fastest CPU path, naming the command that gets it (:func:`.fast_path.cpu_path_note`)."""
        return fast_path.cpu_path_note(self._kernel_mode, self._kernels() is not None)

    def _kernels(self):
        if not self._kernels_loaded:
            self._nb = _load_numba_kernels(self._kernel_mode)
            self._kernels_loaded = True
        return self._nb

    def _kernel(self, pair, size, *arrays):
        """The parallel or serial twin of ``pair`` for ``size`` elements, or None when the arrays
        do not suit a compiled kernel (no Numba, non-float dtype, mixed dtypes)."""
        dtype = arrays[0].dtype
        if dtype not in _FLOATS or any(array.dtype != dtype for array in arrays[1:]):
            return None
        threshold = self._nb.PARALLEL_MIN
        if self._blas_threads.shared:  # no other pool to fight: threads pay off much sooner
            threshold = min(threshold, shared_pool.PARALLEL_MIN)
        return pair[0] if size >= threshold else pair[1]

    def _flat_kernel(self, pair, w, *arrays):
        """The kernel of ``pair`` for a flat update of ``w`` with ``arrays`` (1-d, C-contiguous,
        ``w``'s shape and dtype), or None (no Numba, or arrays that do not suit it)."""
        nb = self._kernels()
        if nb is None or w.ndim != 1 or not w.flags.c_contiguous:
            return None
        for array in arrays:
            if (not isinstance(array, numpy.ndarray) or array.shape != w.shape
                    or not array.flags.c_contiguous):
                return None
        return self._kernel(pair, w.size, w, *arrays)

    def lasting_zeros(self, shape, dtype="float32"):
        """:meth:`ArrayOps.lasting_zeros` on huge pages where it spans one (:func:`.huge_pages.zeros`)."""
        buffer = huge_pages.zeros(shape, dtype)
        return buffer if buffer is not None else super().lasting_zeros(shape, dtype)

    # ------------------------------------------------------------------ gathers
    def take_rows(self, x, index, out=None):
        """``out = x[index]`` along the first axis, every entry of ``index`` a row of ``x`` (the
        batches' callers pass slices of a permutation). Into ``out``, NumPy's ``take`` writes in
        place under ``mode="clip"`` (under its default ``"raise"`` it fills a temporary first);
        the rows it gathers are the same. Without ``out``, the reference."""
        if out is None:
            return super().take_rows(x, index)
        return numpy.take(x, index, axis=0, out=out, mode="clip")

    # ------------------------------------------------------------------ random
    def dropout_mask(self, rng, shape, rate, dtype="float32", out=None):
        dtype = numpy.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, (int, numpy.integer)) else tuple(shape)
        nb = self._kernels()
        if nb is None or dtype not in _FLOATS:
            return super().dropout_mask(rng, shape, rate, dtype, out=out)
        mask = self._uniform_draws(rng, shape, dtype, out)
        kernel = self._kernel(nb.dropout_mask, mask.size, mask)
        kernel(mask.reshape(-1), dtype.type(rate), dtype.type(1.0 / (1.0 - rate)), dtype.type(0))
        if out is not None and mask is not out:
            out[...] = mask
            return out
        return mask

    # ------------------------------------------------------------------ linear algebra
    def matmul(self, a, b, out=None, trans_a=False, trans_b=False):
        if a.ndim == 2 and b.ndim == 2:
            a_op, b_op = (a.T if trans_a else a), (b.T if trans_b else b)
            if a_op.shape[1] == b_op.shape[0]:
                macs = a_op.shape[0] * a_op.shape[1] * b_op.shape[1]
                self._blas_threads.for_product(macs)
                if self._blas_threads.mkl is not None:
                    params = blas_params(a_op, b_op, out)
                    if params is not None:
                        halves = halves_params(params) if macs >= MKL_HALVES_MACS else None
                        if halves is not None and self._blas_threads.can_run_two(a.dtype):
                            self._blas_threads.two_products(halves, a.dtype)
                        else:
                            self._blas_threads.mkl_product(*params)
                        return params[9]
        return super().matmul(a, b, out=out, trans_a=trans_a, trans_b=trans_b)

    def matmuls(self, products):
        """Two products of threaded size (with MKL: of ``MKL_SIDE_BY_SIDE_MACS``) run side by
        side, one pool thread each, while BLAS shares the kernels' pool (:mod:`.shared_pool`);
        anything else one after the other."""
        if len(products) == 2 and self._blas_threads.shared:
            minimum = SMALL_PRODUCT_MACS if self._blas_threads.mkl is None else MKL_SIDE_BY_SIDE_MACS
            params = side_by_side_params(products, minimum)
            if params is not None and self._blas_threads.can_run_two(products[0][0].dtype):
                self._blas_threads.two_products(params, products[0][0].dtype)
                return [product[2] for product in products]
        return super().matmuls(products)

    # ------------------------------------------------------------------ the loop
    def start(self):
        """Until :meth:`finish`: BLAS' thread count set per product, and BLAS on the fused
        kernels' threads where possible (:mod:`.blas_threads`, :mod:`.shared_pool`)."""
        self._loops += 1
        self._blas_threads.begin()

    def finish(self):
        """BLAS gets its own threads and thread count back (``matmul`` runs small products on one
        thread) when the outermost loop ends (a callback may run ``predict`` inside ``fit``)."""
        self._loops = max(self._loops - 1, 0)
        if not self._loops:
            self._blas_threads.restore()

    def training_step(self, model, batch_size):
        """The whole-step kernel (:class:`.numpy_whole_step.WholeStep`) for every model it serves
        (:func:`.numpy_whole_step.plan` says which), else the layered step, with the reason."""
        step, reason = numpy_whole_step.plan(self, model, batch_size)
        if step is not None:
            return step
        step = super().training_step(model, batch_size)
        step.reason = reason
        return step

    # ------------------------------------------------------------------ activations
    def bias_activation(self, z, bias, activation, out=None, alpha=0.0):
        nb = self._kernels()
        if (nb is not None and (activation == "relu" or activation == "softmax") and z.ndim == 2
                and bias.ndim == 1 and bias.shape[0] == z.shape[1] and z.flags.c_contiguous):
            if out is None:
                out = numpy.empty_like(z)
            if out.shape == z.shape and out.flags.c_contiguous:
                pair = nb.bias_activation_relu if activation == "relu" else nb.bias_activation_softmax
                kernel = self._kernel(pair, z.size, z, bias, out)
                if kernel is not None:
                    kernel(z, bias, out)
                    return out
        return super().bias_activation(z, bias, activation, out=out, alpha=alpha)

    def backprop_relu(self, dy, y, out=None):
        nb = self._kernels()
        if nb is not None and dy.shape == y.shape and dy.flags.c_contiguous and y.flags.c_contiguous:
            if out is None:
                out = numpy.empty_like(dy)
            if out.shape == dy.shape and out.flags.c_contiguous:
                kernel = self._kernel(nb.backprop_relu, dy.size, dy, y, out)
                if kernel is not None:
                    kernel(dy.reshape(-1), y.reshape(-1), out.reshape(-1))
                    return out
        return super().backprop_relu(dy, y, out=out)

    # ------------------------------------------------------------------ fused loss
    def softmax_cross_entropy(self, logits, probs, target, grad_out, sparse=False):
        nb = self._kernels()
        if (nb is not None and logits.ndim == 2 and logits.shape[0] > 0
                and logits.shape == probs.shape == grad_out.shape and logits.flags.c_contiguous
                and probs.flags.c_contiguous and grad_out.flags.c_contiguous):
            inv_n = logits.dtype.type(1.0 / logits.shape[0])
            if sparse and target.ndim == 1 and target.dtype.kind in "iu":
                kernel = self._kernel(nb.softmax_cross_entropy_sparse, logits.size, logits, probs, grad_out)
                if kernel is not None:
                    return logits.dtype.type(kernel(logits, probs, target, grad_out, inv_n))
            elif not sparse and target.shape == logits.shape and target.flags.c_contiguous:
                kernel = self._kernel(nb.softmax_cross_entropy, logits.size, logits, probs, grad_out, target)
                if kernel is not None:
                    return logits.dtype.type(kernel(logits, probs, target, grad_out, inv_n))
        return super().softmax_cross_entropy(logits, probs, target, grad_out, sparse=sparse)

    # ------------------------------------------------------------------ metrics
    def count_correct(self, pred, target, kind):
        if kind == "categorical" and pred.ndim == 2 and pred.shape == target.shape and pred.shape[1] > 0:
            nb = self._kernels()
            if nb is not None and pred.dtype == target.dtype:
                kernel = self._kernel(nb.count_correct_categorical, 0, pred, target)
                if kernel is not None:
                    return numpy.int64(kernel(pred, target))
        return super().count_correct(pred, target, kind)
