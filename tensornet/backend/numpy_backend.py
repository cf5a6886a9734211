"""The CPU backend: the reference operations of :class:`Backend` on NumPy, with the hot paths
of a training step made lean.

What is overridden, and why (measurements in ``bench/NOTES.md``):

- ``matmul``: straight to ``numpy.matmul`` with ``out=``; transposes are views, so BLAS reads
  them through its own transpose flags with no copy.
- the training step's element-wise work -- bias + relu, bias + softmax, the relu gradient, the
  fused softmax cross-entropy, the accuracy count and the SGD update over the flat parameter
  buffer -- runs as fused one-pass loops compiled by Numba when it is installed (the ``fast``
  extra; :mod:`._numba_kernels`), threaded over the cores for large buffers -- and, inside
  fit / evaluate / predict, from 32k elements, with the products on the same threads
  (:mod:`.shared_pool`: MKL's GEMM with the ``mkl`` package, else NumPy's OpenBLAS), a layer's
  two backward products side by side (``matmuls``; with MKL only large ones). Without Numba (or
  with ``TENSORNET_CPU_KERNELS=numpy``) the same methods run in NumPy with preallocated scratch
  buffers and ``out=`` everywhere, so a step allocates no large array either way.
- ``compiled_mlp_step``: a whole training step of a Dense network with SGD as one Numba call
  (:mod:`._numba_step`, chosen by :mod:`tensornet.compiled_step`), on MKL and the shared pool.
- the adaptive optimizer updates (RMSprop, Adagrad, Adadelta, Adam / AMSGrad, Adamax, Nadam)
  run as one Numba pass over the flat buffers (the base's NumPy expressions are 6-15 passes
  with temporaries), in the base's order of operations, so they match it bit for bit.
- ``dropout_mask`` draws ``rng.random`` in the mask's own dtype straight into ``out`` and
  thresholds it in place: the same stream and mask as :meth:`Backend.dropout_mask`.

Every override keeps :class:`Backend`'s signature and is tested against it on random inputs,
in both modes (``tests/test_backend_numpy.py``).
"""
from __future__ import annotations

import os

import numpy

from . import mkl_blas, shared_pool
from .base import Backend
from .blas_threads import MKL_SIDE_BY_SIDE_MACS, SMALL_PRODUCT_MACS, BlasThreads

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
                               "install tensornet[fast]") from None
        return None
    return _numba_kernels


def _blas_operand(a):
    """(CBLAS transpose flag, leading dimension) under which BLAS reads the 2-D view ``a`` in
    place, or None (a layout BLAS cannot read without a copy)."""
    item, (rows, cols), (row_step, col_step) = a.itemsize, a.shape, a.strides
    if col_step == item and row_step % item == 0 and row_step >= cols * item:
        return shared_pool.NO_TRANS, row_step // item
    if row_step == item and col_step % item == 0 and col_step >= rows * item:
        return shared_pool.TRANS, col_step // item
    return None


def _blas_params(a, b, out):
    """(trans_a, trans_b, m, n, k, a, lda, b, ldb, out, ldc) for ``out = a @ b`` (2-D views,
    ``out`` allocated when None) through CBLAS on the arrays in place, or None: non-float or
    mixed dtypes, an empty or mismatched shape, or a layout BLAS cannot read without a copy."""
    dtype = a.dtype
    if dtype not in _FLOATS or b.dtype != dtype or (out is not None and (out.dtype != dtype or out.ndim != 2)):
        return None
    (m, k), n = a.shape, b.shape[1]
    if min(m, k, n) == 0 or b.shape[0] != k:
        return None
    if out is None:
        out = numpy.empty((m, n), dtype)
    elif out.shape != (m, n):
        return None
    op_a, op_b, op_out = _blas_operand(a), _blas_operand(b), _blas_operand(out)
    if op_a is None or op_b is None or op_out is None or op_out[0] != shared_pool.NO_TRANS:
        return None
    if max(m, n, k, op_a[1], op_b[1], op_out[1]) >= 2 ** 31:  # CBLAS' 32-bit sizes (MKL's LP64)
        return None
    return op_a[0], op_b[0], m, n, k, a, op_a[1], b, op_b[1], out, op_out[1]


def _side_by_side_params(products, min_macs=SMALL_PRODUCT_MACS):
    """The int64 rows :meth:`.shared_pool.SharedBlasPool.two_products` takes for two products
    ``(a, b, out, trans_a, trans_b)``, or None when they do not suit it: not both of at least
    ``min_macs`` multiply-adds, a product :func:`_blas_params` refuses, two dtypes, or an output
    overlapping the other product's arrays."""
    rows, views = [], []
    for a, b, out, trans_a, trans_b in products:
        if not all(isinstance(x, numpy.ndarray) and x.ndim == 2 for x in (a, b, out)):
            return None
        params = _blas_params(a.T if trans_a else a, b.T if trans_b else b, out)
        if params is None or params[2] * params[3] * params[4] < min_macs:
            return None
        trans_a, trans_b, m, n, k, a, lda, b, ldb, out, ldc = params
        rows.append([trans_a, trans_b, m, n, k, a.ctypes.data, lda, b.ctypes.data, ldb, out.ctypes.data, ldc])
        views.append((a, b, out))
    (a0, b0, out0), (a1, b1, out1) = views
    if a0.dtype != a1.dtype:
        return None
    for out, others in ((out0, (a1, b1, out1)), (out1, (a0, b0))):
        if any(numpy.may_share_memory(out, other) for other in others):
            return None
    return numpy.array(rows, dtype=numpy.int64)


class _MlpStep:
    """:meth:`NumpyBackend.compiled_mlp_step`'s ``run``: calls :func:`._numba_step.mlp_sgd_step`
    with the SGD scalars cast to the dtype; ``ready`` is False once the pool is no longer shared
    (a forked child, where a parallel region would abort: the caller then takes the layered step)."""

    def __init__(self, blas_threads, gemm, dtype):
        from . import _numba_step

        self._kernel, self._blas_threads, self._gemm = _numba_step.mlp_sgd_step, blas_threads, gemm
        self._cast, self._tiny = dtype.type, numpy.finfo(dtype).tiny
        self._losses = numpy.zeros(blas_threads.threads)
        self._no_labels, self._no_targets = numpy.zeros(0, numpy.int64), numpy.zeros((0, 0), dtype)

    @property
    def ready(self) -> bool:
        return self._blas_threads.mkl is not None  # MKL's GEMM is set only while the pool is shared

    def __call__(self, x, target, params, grads, velocity, table, acts, dz, probs, lr, momentum, nesterov,
                 weight_decay, update=True):
        sparse, cast = target.ndim == 1, self._cast
        mode = 0 if not momentum else (2 if nesterov else 1)
        total = self._kernel(self._gemm, x, self._no_targets if sparse else target, target if sparse else self._no_labels,
                             sparse, params, grads, params if velocity is None else velocity, table, acts, dz, probs,
                             cast(lr), cast(momentum), cast(weight_decay), mode, bool(weight_decay), self._tiny,
                             self._losses, update)
        return cast(total)


class NumpyBackend(Backend):
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
            from .blas_threads import numpy_blas_controller

            info["cpu_threads"] = shared_pool.describe(numpy_blas_controller())
        return info

    def _set_kernels(self, mode):
        """Switch between ``"numba"``, ``"numpy"`` and ``"auto"`` (tests run both paths)."""
        self._blas_threads.restore()
        self._kernel_mode, self._kernels_loaded, self._nb = mode, False, None
        self._blas_threads = BlasThreads(share_pool=lambda: self._kernels() is not None)
        return self._kernels()

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

    # ------------------------------------------------------------------ random
    def dropout_mask(self, rng, shape, rate, dtype="float32", out=None):
        dtype = numpy.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, (int, numpy.integer)) else tuple(shape)
        if dtype not in _FLOATS:
            return super().dropout_mask(rng, shape, rate, dtype, out=out)
        if (out is not None and isinstance(out, numpy.ndarray) and out.dtype == dtype
                and out.shape == shape and out.flags.c_contiguous):
            mask = out
        else:
            mask = numpy.empty(shape, dtype)
        rng.random(dtype=dtype, out=mask)  # the stream of rng.random(size=shape, dtype=dtype)
        rate_t, scale = dtype.type(rate), dtype.type(1.0 / (1.0 - rate))
        nb = self._kernels()
        kernel = None if nb is None else self._kernel(nb.dropout, mask.size, mask)
        if kernel is not None:
            kernel(mask.reshape(-1), rate_t, scale, dtype.type(0))
        else:
            keep = self.scratch("dropout_keep", shape, numpy.bool_)
            numpy.greater_equal(mask, rate_t, out=keep)
            numpy.multiply(keep, scale, out=mask)
        if out is not None and mask is not out:
            out[...] = mask
            return out
        return mask

    # ------------------------------------------------------------------ linear algebra
    def matmul(self, a, b, out=None, trans_a=False, trans_b=False):
        if a.ndim == 2 and b.ndim == 2:
            if trans_a:
                a = a.T
            if trans_b:
                b = b.T
            if a.shape[1] != b.shape[0]:
                raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
            self._blas_threads.for_product(a.shape[0] * a.shape[1] * b.shape[1])
            if self._blas_threads.mkl is not None:
                params = _blas_params(a, b, out)
                if params is not None:
                    self._blas_threads.mkl_product(*params)
                    return params[9]
            return numpy.matmul(a, b, out=out)
        return super().matmul(a, b, out=out, trans_a=trans_a, trans_b=trans_b)

    def matmuls(self, products):
        """Two products of threaded size (with MKL: of ``MKL_SIDE_BY_SIDE_MACS``) run side by
        side, one pool thread each, while BLAS shares the kernels' pool (:mod:`.shared_pool`);
        anything else one after the other."""
        if len(products) == 2 and self._blas_threads.shared:
            minimum = SMALL_PRODUCT_MACS if self._blas_threads.mkl is None else MKL_SIDE_BY_SIDE_MACS
            params = _side_by_side_params(products, minimum)
            if params is not None and self._blas_threads.can_run_two(products[0][0].dtype):
                self._blas_threads.two_products(params, products[0][0].dtype)
                return [product[2] for product in products]
        return super().matmuls(products)

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

    def compiled_mlp_step(self, dtype, largest_macs):
        """The whole-step kernel of :mod:`._numba_step`, on MKL's GEMM and the shared pool; only
        inside a loop (``start()``), with Numba, and where the step's largest product is threaded
        (``SMALL_PRODUCT_MACS``: smaller models keep BLAS on one thread and the layered step).

        ``run(x, target, params, grads, velocity, table, acts, dz, probs, lr, momentum, nesterov,
        weight_decay, update=True)`` returns the batch's loss sum in ``dtype``; ``target`` is
        (B, classes) in ``dtype`` or (B,) int64 labels; ``velocity`` may be None (momentum 0).
        ``run.ready`` says whether it can still run (False in a forked child)."""
        dtype = numpy.dtype(dtype)
        if dtype not in _FLOATS:
            return None, f"the model's dtype is {dtype}, not float32 or float64"
        if self._kernels() is None:
            return None, f"Numba's kernels are not in use ({KERNELS_ENV}={self._kernel_mode}, or Numba is not installed)"
        if not self._blas_threads.in_loop:
            return None, "the compiled step runs only inside fit"
        if largest_macs < SMALL_PRODUCT_MACS:
            return None, (f"the largest product has {largest_macs} multiply-adds, below {SMALL_PRODUCT_MACS}: "
                          "BLAS stays on one thread and the layered step is the faster one")
        self._blas_threads.for_product(largest_macs)  # shares the pool with MKL where possible
        mkl = self._blas_threads.mkl
        if mkl is None:
            return None, f"MKL is not running on the shared pool ({self._blas_threads.reason or 'not loaded'})"
        return _MlpStep(self._blas_threads, mkl.addresses[dtype.char], dtype), None

    def sum_rows(self, x, out=None):
        return numpy.add.reduce(x, axis=0, out=out)

    # ------------------------------------------------------------------ fused forward
    def bias_activation(self, z, bias, activation, out=None, alpha=0.0):
        nb = self._kernels()
        if (activation in ("relu", "softmax") and z.ndim == 2 and bias.ndim == 1
                and bias.shape[0] == z.shape[1]):
            if out is None:
                out = numpy.empty_like(z)
            if nb is not None and z.flags.c_contiguous and out.flags.c_contiguous:
                kernel = self._kernel(nb.bias_relu if activation == "relu" else nb.bias_softmax,
                                      z.size, z, bias, out)
                if kernel is not None:
                    kernel(z, bias, out)
                    return out
            numpy.add(z, bias, out=z)
            if activation == "relu":
                return numpy.maximum(z, 0, out=out)
            return self.softmax(z, out=out)
        return super().bias_activation(z, bias, activation, out=out, alpha=alpha)

    def relu(self, x, out=None):
        return numpy.maximum(x, 0, out=out)

    def backprop_relu(self, dy, y, out=None):
        if out is None:
            out = numpy.empty_like(dy)
        nb = self._kernels()
        if (nb is not None and dy.shape == y.shape == out.shape and dy.flags.c_contiguous
                and y.flags.c_contiguous and out.flags.c_contiguous):
            kernel = self._kernel(nb.relu_backward, dy.size, dy, y, out)
            if kernel is not None:
                kernel(dy.reshape(-1), y.reshape(-1), out.reshape(-1))
                return out
        mask = self.scratch("relu_mask", y.shape, numpy.bool_)
        numpy.greater(y, 0, out=mask)
        return numpy.multiply(dy, mask, out=out)

    def softmax(self, x, out=None):
        if x.ndim != 2:
            return super().softmax(x, out=out)
        rows = (x.shape[0], 1)
        row_max = self.scratch("softmax_max", rows, x.dtype)
        numpy.max(x, axis=-1, keepdims=True, out=row_max)
        out = numpy.subtract(x, row_max, out=out)
        numpy.exp(out, out=out)
        row_sum = self.scratch("softmax_sum", rows, x.dtype)
        numpy.sum(out, axis=-1, keepdims=True, out=row_sum)
        out /= row_sum
        return out

    # ------------------------------------------------------------------ fused loss
    def softmax_cross_entropy(self, logits, probs, target, grad_out, sparse=False):
        nb = self._kernels()
        if (nb is not None and logits.ndim == 2 and logits.shape == probs.shape == grad_out.shape
                and logits.flags.c_contiguous and probs.flags.c_contiguous and grad_out.flags.c_contiguous):
            n = logits.shape[0]
            if n == 0:
                return super().softmax_cross_entropy(logits, probs, target, grad_out, sparse=sparse)
            inv_n = logits.dtype.type(1.0 / n)
            if sparse:
                if target.ndim == 1 and target.dtype.kind in "iu":
                    kernel = self._kernel(nb.softmax_xent_sparse, logits.size, logits, probs, grad_out)
                    if kernel is not None:
                        return logits.dtype.type(kernel(logits, probs, target, grad_out, inv_n))
            elif target.shape == logits.shape and target.flags.c_contiguous:
                kernel = self._kernel(nb.softmax_xent_dense, logits.size, logits, probs, grad_out, target)
                if kernel is not None:
                    return logits.dtype.type(kernel(logits, probs, target, grad_out, inv_n))
        if logits.ndim != 2:
            return super().softmax_cross_entropy(logits, probs, target, grad_out, sparse=sparse)
        # NumPy: log-softmax of the logits into scratch (no allocation of batch-sized arrays).
        rows = (logits.shape[0], 1)
        shifted = self.scratch("xent_shifted", logits.shape, logits.dtype)
        row = self.scratch("xent_row", rows, logits.dtype)
        numpy.max(logits, axis=-1, keepdims=True, out=row)
        numpy.subtract(logits, row, out=shifted)
        exp = self.scratch("xent_exp", logits.shape, logits.dtype)
        numpy.exp(shifted, out=exp)
        numpy.sum(exp, axis=-1, keepdims=True, out=row)
        numpy.log(row, out=row)
        shifted -= row  # log_softmax(logits)
        if sparse:
            loss = -self._pick(shifted, target).sum()
        else:
            numpy.multiply(shifted, target, out=shifted)
            loss = -shifted.sum()
        self._softmax_ce_grad_from_probs(probs, target, grad_out, sparse=sparse)
        return loss

    # ------------------------------------------------------------------ metrics
    def count_correct(self, pred, target, kind):
        if kind == "categorical" and pred.ndim == 2 and pred.shape == target.shape and pred.shape[1] > 0:
            nb = self._kernels()
            if nb is not None and pred.dtype == target.dtype:
                kernel = self._kernel(nb.count_argmax_equal, 0, pred, target)
                if kernel is not None:
                    return numpy.int64(kernel(pred, target))
        return super().count_correct(pred, target, kind)

    # ------------------------------------------------------------------ optimizer
    def sgd_update(self, w, g, velocity, lr, momentum, nesterov, weight_decay):
        nb = self._kernels()
        if (nb is not None and w.ndim == 1 and g.shape == w.shape and w.flags.c_contiguous
                and g.flags.c_contiguous and (velocity is None or velocity.flags.c_contiguous)):
            arrays = (w, g) if not momentum else (w, g, velocity)
            kernel = self._kernel(nb.sgd, w.size, *arrays)
            if kernel is not None:
                cast = w.dtype.type
                mode = 0 if not momentum else (2 if nesterov else 1)
                kernel(w, g, velocity if momentum else w, cast(lr), cast(momentum), cast(weight_decay),
                       mode, bool(weight_decay), numpy.finfo(w.dtype).tiny)
                return
        super().sgd_update(w, g, velocity, lr, momentum, nesterov, weight_decay)

    def rmsprop_update(self, w, g, mean_square, lr, rho, epsilon, momentum, velocity, centered, mean_grad):
        nb = self._kernels()
        if nb is not None:
            arrays = (g, mean_square) + ((mean_grad,) if centered else ()) + ((velocity,) if momentum else ())
            kernel = self._flat_kernel(nb.rmsprop, w, *arrays)
            if kernel is not None:
                t = w.dtype.type
                kernel(w, g, mean_square, mean_grad if centered else w, velocity if momentum else w,
                       t(lr), t(rho), t(1.0 - rho), t(epsilon), t(momentum), bool(centered), bool(momentum))
                return
        super().rmsprop_update(w, g, mean_square, lr, rho, epsilon, momentum, velocity, centered, mean_grad)

    def adagrad_update(self, w, g, accumulator, lr, epsilon):
        nb = self._kernels()
        if nb is not None:
            kernel = self._flat_kernel(nb.adagrad, w, g, accumulator)
            if kernel is not None:
                t = w.dtype.type
                kernel(w, g, accumulator, t(lr), t(epsilon))
                return
        super().adagrad_update(w, g, accumulator, lr, epsilon)

    def adadelta_update(self, w, g, accum_grad, accum_delta, lr, rho, epsilon):
        nb = self._kernels()
        if nb is not None:
            kernel = self._flat_kernel(nb.adadelta, w, g, accum_grad, accum_delta)
            if kernel is not None:
                t = w.dtype.type
                kernel(w, g, accum_grad, accum_delta, t(lr), t(rho), t(1.0 - rho), t(epsilon))
                return
        super().adadelta_update(w, g, accum_grad, accum_delta, lr, rho, epsilon)

    def adam_update(self, w, g, m, v, lr, beta_1, beta_2, epsilon, t, amsgrad=False, v_max=None):
        nb = self._kernels()
        if nb is not None:
            kernel = self._flat_kernel(nb.adam, w, g, m, v, *((v_max,) if amsgrad else ()))
            if kernel is not None:
                T = w.dtype.type
                alpha = lr * (1.0 - beta_2 ** (t + 1)) ** 0.5 / (1.0 - beta_1 ** (t + 1))  # as the base
                kernel(w, g, m, v, v_max if amsgrad else w, T(alpha), T(beta_1), T(1.0 - beta_1), T(beta_2),
                       T(1.0 - beta_2), T(epsilon), bool(amsgrad))
                return
        super().adam_update(w, g, m, v, lr, beta_1, beta_2, epsilon, t, amsgrad=amsgrad, v_max=v_max)

    def adamax_update(self, w, g, m, u, lr, beta_1, beta_2, epsilon, t):
        nb = self._kernels()
        if nb is not None:
            kernel = self._flat_kernel(nb.adamax, w, g, m, u)
            if kernel is not None:
                T = w.dtype.type
                kernel(w, g, m, u, T(lr / (1.0 - beta_1 ** (t + 1))), T(beta_1), T(1.0 - beta_1), T(beta_2),
                       T(epsilon))
                return
        super().adamax_update(w, g, m, u, lr, beta_1, beta_2, epsilon, t)

    def nadam_update(self, w, g, m, v, lr, beta_1, beta_2, epsilon, mu_t, mu_next, mu_product, t):
        nb = self._kernels()
        if nb is not None:
            kernel = self._flat_kernel(nb.nadam, w, g, m, v)
            if kernel is not None:
                T = w.dtype.type
                m_coef = mu_next / (1.0 - mu_product * mu_next)
                g_coef = (1.0 - mu_t) / (1.0 - mu_product)
                kernel(w, g, m, v, T(lr), T(beta_1), T(1.0 - beta_1), T(beta_2), T(1.0 - beta_2), T(epsilon),
                       T(m_coef), T(g_coef), T(1.0 - beta_2 ** (t + 1)))
                return
        super().nadam_update(w, g, m, v, lr, beta_1, beta_2, epsilon, mu_t, mu_next, mu_product, t)
