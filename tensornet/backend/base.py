"""The reference backend: every operation the stack needs, written once against ``self.xp``.

A backend is an object with an array module ``xp`` (NumPy or CuPy) and methods for the
forward / backward pairs of the training loop. Layers, losses, optimizers and the trainer
call these methods and never import an array library themselves. Subclasses set ``xp`` and
override a method only where they have something faster (a fused kernel); the signatures
stay those of this class (``tests/test_backend_signatures.py`` checks it).

Conventions:
- ``out=`` is an optional preallocated array the result is written into (and returned).
- Activation backward functions take the activation's *output* ``y`` (every supported
  activation's derivative is a function of its output), so forward may run in place.
- Loss functions return the *sum over the batch* of per-example losses as a 0-d array on
  the device (no host synchronisation); their gradients are of the *batch mean*.
- Optimizer updates modify the flat parameter and state buffers in place.
"""
from __future__ import annotations

import os

import numpy

#: Clip applied to probabilities by the cross-entropy losses (Keras' epsilon).
EPSILON = 1e-7


class Backend:
    """Reference implementation of every operation, on the array module ``xp``."""

    name = "base"
    xp = numpy

    def __init__(self):
        self._scratch_buffers = {}

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"

    # ------------------------------------------------------------------ arrays
    def asarray(self, x, dtype=None):
        """Return ``x`` as an array of this backend (no copy when it already is one)."""
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        """Return ``x`` as a host NumPy array."""
        return numpy.asarray(x)

    def to_float(self, x) -> float:
        """Return a 0-d array (or scalar) as a Python float; on a GPU this synchronises."""
        return float(x)

    def is_array(self, x) -> bool:
        """True when ``x`` is an array of this backend's module."""
        return isinstance(x, self.xp.ndarray)

    def dtype(self, name):
        """The array-module dtype for ``name`` (``"float32"``, ``"int64"``, ...)."""
        return self.xp.dtype(name)

    def empty(self, shape, dtype="float32"):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype="float32"):
        return self.xp.zeros(shape, dtype=dtype)

    def copy(self, x):
        return self.xp.array(x, copy=True)

    def scratch(self, key, shape, dtype):
        """A reusable work buffer identified by ``key``; reallocated only when shape/dtype change."""
        buffer = self._scratch_buffers.get(key)
        if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype:
            buffer = self.xp.empty(shape, dtype=dtype)
            self._scratch_buffers[key] = buffer
        return buffer

    def memory_budget(self):
        """Bytes of training data ``fit`` may keep resident on this backend's device; ``None``
        means no limit (the CPU). Larger data sets are streamed in chunks."""
        return None

    def is_out_of_memory(self, exc) -> bool:
        """True when ``exc`` means the device (here: the host) ran out of memory."""
        return isinstance(exc, MemoryError)

    def release_memory(self):
        """Free what this backend keeps cached (scratch buffers; a GPU backend also empties
        its memory pools), so the process can go on after running out of memory."""
        self._scratch_buffers = {}

    def free_memory(self):
        """Bytes of memory available for new arrays now (None when it cannot be told)."""
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None

    def host_buffer(self, shape, dtype="float32"):
        """A host array to stage transfers through (page-locked on a GPU backend)."""
        return numpy.empty(shape, dtype=dtype)

    def to_device(self, x, out=None):
        """Copy the host array ``x`` to this backend (into ``out`` when given)."""
        if out is None:
            return self.asarray(x)
        out[...] = x
        return out

    def synchronize(self):
        """Wait for queued device work to finish (a no-op on the CPU)."""

    def start(self):
        """Called when ``fit``, ``evaluate`` or ``predict`` begins: from here until :meth:`finish`
        the backend may change process-wide settings for speed (none here)."""

    def finish(self):
        """Called when ``fit``, ``evaluate`` or ``predict`` returns: undo any process-wide setting
        the backend made for speed during the loop (none here)."""

    def compiled_mlp_step(self, dtype, largest_macs):
        """``(run, None)``: a function training a Dense network (relu or linear hidden layers,
        softmax + cross-entropy, SGD) one whole step per call -- see
        :func:`tensornet.backend._numba_step.mlp_sgd_step` for what ``run`` computes and
        :mod:`tensornet.compiled_step` for who calls it; ``run.ready`` says whether it can still
        run -- or ``(None, reason)`` where this backend has none now. ``largest_macs``:
        multiply-adds of the step's largest product."""
        return None, f"the {self.name} backend has no compiled training step"

    def device_info(self) -> dict:
        """A description of the device this backend computes on."""
        import platform

        return {"device": "cpu", "processor": platform.processor() or platform.machine()}

    # ------------------------------------------------------------------ random
    def rng(self, seed=None):
        """A seeded host random generator (NumPy's PCG64); ``seed=None`` draws fresh entropy."""
        return numpy.random.default_rng(seed)

    def random_uniform(self, rng, shape, low, high, dtype="float32"):
        """U(low, high) drawn on the host with ``rng`` (identical on every backend), as ``dtype``."""
        return self.asarray(rng.uniform(low, high, size=shape).astype(dtype))

    def random_normal(self, rng, shape, mean, stddev, dtype="float32", truncated=False):
        """N(mean, stddev^2); with ``truncated`` redrawn outside two standard deviations."""
        values = rng.standard_normal(size=shape)
        if truncated:
            bad = numpy.abs(values) > 2.0
            while bad.any():
                values[bad] = rng.standard_normal(size=int(bad.sum()))
                bad = numpy.abs(values) > 2.0
        return self.asarray((mean + stddev * values).astype(dtype))

    def permutation(self, rng, n):
        """A random permutation of ``range(n)`` as an int64 index array of this backend."""
        return self.asarray(rng.permutation(n).astype(numpy.int64))

    def arange(self, start, stop):
        return self.xp.arange(start, stop, dtype=self.xp.int64)

    def take_rows(self, x, index, out=None):
        """Gather ``x[index]`` along the first axis (into ``out`` when given)."""
        if out is None:
            return self.xp.take(x, index, axis=0)
        return self.xp.take(x, index, axis=0, out=out)

    def dropout_mask(self, rng, shape, rate, dtype="float32", out=None):
        """Inverted-dropout mask: 1 / (1 - rate) with probability 1 - rate, else 0 (drawn with ``rng``).

        u = rng.random(size=shape, dtype=dtype) (float64 draws for dtypes other than float32 /
        float64); mask = (u >= rate) * T(1 / (1 - rate)), with rate and the scale cast to the
        draw's / mask's dtype T. The NumPy backend's fast paths draw the same stream."""
        dtype = numpy.dtype(dtype)
        draw = dtype if dtype in (numpy.dtype("float32"), numpy.dtype("float64")) else numpy.dtype("float64")
        u = rng.random(size=shape, dtype=draw)
        keep = u >= draw.type(rate)
        mask = self.asarray((keep * dtype.type(1.0 / (1.0 - rate))).astype(dtype, copy=False))
        if out is None:
            return mask
        out[...] = mask
        return out

    # ------------------------------------------------------------------ linear algebra
    def matmul(self, a, b, out=None, trans_a=False, trans_b=False):
        """``op(a) @ op(b)`` for 2-D matrices or 3-D batches, ``op`` transposing the last two axes."""
        if a.ndim not in (2, 3) or b.ndim not in (2, 3):
            raise ValueError(f"matmul expects 2-D or 3-D arrays, got shapes {a.shape} and {b.shape}")
        if trans_a:
            a = self.xp.swapaxes(a, -1, -2)
        if trans_b:
            b = self.xp.swapaxes(b, -1, -2)
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
        return self.xp.matmul(a, b, out=out)

    def matmuls(self, products):
        """Independent products: each ``(a, b, out, trans_a, trans_b)`` is ``out = op(a) @ op(b)``
        as :meth:`matmul` computes it, and no ``out`` overlaps another product's operands. A
        backend may run them at the same time. Returns the results in order."""
        return [self.matmul(a, b, out=out, trans_a=trans_a, trans_b=trans_b)
                for a, b, out, trans_a, trans_b in products]

    def multiply(self, a, b, out=None):
        """Element-wise a * b."""
        return self.xp.multiply(a, b, out=out)

    def bias_add(self, x, bias, out=None):
        """``x + bias`` with ``bias`` broadcast over the rows."""
        return self.xp.add(x, bias, out=out)

    def sum_rows(self, x, out=None):
        """Column sums ``sum_i x[i, :]`` (the bias gradient)."""
        return self.xp.sum(x, axis=0, out=out)

    def bias_activation(self, z, bias, activation, out=None, alpha=0.0):
        """``z += bias`` in place, then ``out = activation(z)``; returns ``out``.

        Fused into one pass where a backend has a kernel for it.
        """
        self.bias_add(z, bias, out=z)
        return self.activation(activation, z, out=out, alpha=alpha)

    # ------------------------------------------------------------------ batch normalization
    # Per-feature statistics over the batch axis of a 2-D (batch, features) array. ``gamma`` or
    # ``beta`` may be None (a layer built with scale=False / center=False): gamma = 1, beta = 0.
    def batch_norm_forward(self, x, gamma, beta, epsilon, out=None, x_hat_out=None):
        """Training-mode batch normalization over axis 0 of ``x`` (N, F):

        mean = sum_i x_i / N;  var = sum_i (x_i - mean)^2 / N  (the biased variance, as Keras);
        inv_std = 1 / sqrt(var + epsilon);  x_hat = (x - mean) inv_std;  y = gamma x_hat + beta.

        Returns ``(y, x_hat, inv_std, mean, var)``; ``y`` goes to ``out`` and ``x_hat`` to
        ``x_hat_out`` when given (distinct buffers, neither aliasing ``x``)."""
        xp = self.xp
        mean = xp.mean(x, axis=0)
        x_hat = xp.subtract(x, mean, out=x_hat_out)
        y = xp.multiply(x_hat, x_hat, out=out)
        var = xp.mean(y, axis=0)
        inv_std = xp.sqrt(var + epsilon)
        inv_std = xp.divide(1.0, inv_std, out=inv_std)
        x_hat *= inv_std
        if gamma is not None:
            xp.multiply(x_hat, gamma, out=y)
        else:
            xp.copyto(y, x_hat)
        if beta is not None:
            y += beta
        return y, x_hat, inv_std, mean, var

    def batch_norm_backward(self, dy, x_hat, inv_std, gamma, dx_out=None, dgamma_out=None, dbeta_out=None):
        """Gradients of training-mode batch normalization (batch statistics differentiated):

        dbeta = sum_i dy_i;  dgamma = sum_i dy_i x_hat_i;
        dx = (gamma inv_std / N) (N dy - dbeta - x_hat dgamma).

        Returns ``(dx, dgamma, dbeta)``, each written to its ``*_out`` when given (``dx_out``
        must not alias ``dy`` or ``x_hat``); ``gamma`` None means gamma = 1."""
        xp = self.xp
        n = dy.shape[0]
        dbeta = xp.sum(dy, axis=0, out=dbeta_out)
        dx = xp.multiply(dy, x_hat, out=dx_out)
        dgamma = xp.sum(dx, axis=0, out=dgamma_out)
        # dx = (dy - dbeta / N - x_hat dgamma / N) * gamma inv_std
        xp.multiply(x_hat, dgamma * (1.0 / n), out=dx)
        dx += dbeta * (1.0 / n)
        xp.subtract(dy, dx, out=dx)
        dx *= inv_std if gamma is None else gamma * inv_std
        return dx, dgamma, dbeta

    def batch_norm_inference(self, x, moving_mean, moving_var, gamma, beta, epsilon, out=None):
        """Inference-mode batch normalization with fixed statistics:
        y = gamma (x - moving_mean) / sqrt(moving_var + epsilon) + beta."""
        xp = self.xp
        inv_std = xp.sqrt(moving_var + epsilon)
        inv_std = xp.divide(1.0, inv_std, out=inv_std)
        y = xp.subtract(x, moving_mean, out=out)
        y *= inv_std
        if gamma is not None:
            y *= gamma
        if beta is not None:
            y += beta
        return y

    def update_moving(self, moving, value, momentum):
        """Exponential moving average in place (Keras): moving = moving * momentum + value * (1 - momentum)."""
        moving *= momentum
        moving += value * (1.0 - momentum)
        return moving

    # ------------------------------------------------------------------ activations
    def activation(self, name, x, out=None, alpha=0.0):
        """Apply the activation called ``name`` (``alpha`` is leaky relu's slope)."""
        if name == "leaky_relu":
            return self.leaky_relu(x, alpha, out=out)
        return getattr(self, name)(x, out=out)

    def backprop_activation(self, name, dy, y, out=None, alpha=0.0):
        """Gradient with respect to the input of activation ``name``, from its output ``y``."""
        if name == "leaky_relu":
            return self.backprop_leaky_relu(dy, y, alpha, out=out)
        return getattr(self, "backprop_" + name)(dy, y, out=out)

    def linear(self, x, out=None):
        """f(x) = x."""
        if out is None or out is x:
            return x
        self.xp.copyto(out, x)
        return out

    def backprop_linear(self, dy, y, out=None):
        """f'(x) = 1."""
        return self.linear(dy, out=out)

    def step(self, x, out=None):
        """Heaviside step 1[x >= 0]."""
        mask = self.xp.greater_equal(x, 0)
        if out is None:
            return mask.astype(x.dtype)
        out[...] = mask
        return out

    def backprop_step(self, dy, y, out=None):
        """f'(x) = 0 almost everywhere: a step unit passes no gradient (perceptron demos only)."""
        if out is None:
            return self.xp.zeros_like(dy)
        out[...] = 0
        return out

    def sigmoid(self, x, out=None):
        """1 / (1 + e^-x), evaluated as u / (1 + e) with e = exp(-|x|) and u = 1 for x >= 0, u = e
        for x < 0: no overflow for any x and full relative precision in both tails."""
        xp = self.xp
        e = xp.exp(-xp.abs(x))
        value = xp.where(x >= 0, 1.0, e)
        e += 1.0
        value /= e
        if out is None:
            return value.astype(x.dtype, copy=False)
        out[...] = value
        return out

    def backprop_sigmoid(self, dy, y, out=None):
        """f'(x) = s (1 - s), with s = f(x) = y."""
        tmp = self.xp.subtract(1, y)
        tmp *= y
        return self.xp.multiply(dy, tmp, out=out)

    def tanh(self, x, out=None):
        """tanh(x)."""
        return self.xp.tanh(x, out=out)

    def backprop_tanh(self, dy, y, out=None):
        """f'(x) = 1 - y^2."""
        tmp = self.xp.multiply(y, y)
        self.xp.subtract(1, tmp, out=tmp)
        return self.xp.multiply(dy, tmp, out=out)

    def relu(self, x, out=None):
        """max(0, x)."""
        return self.xp.maximum(x, 0, out=out)

    def backprop_relu(self, dy, y, out=None):
        """f'(x) = 1[x > 0] = 1[y > 0]."""
        mask = self.xp.greater(y, 0)
        if out is None:
            return dy * mask
        return self.xp.multiply(dy, mask, out=out)

    def leaky_relu(self, x, alpha, out=None):
        """max(alpha x, x) for 0 <= alpha < 1."""
        return self.xp.maximum(x, self.xp.multiply(x, alpha), out=out)

    def backprop_leaky_relu(self, dy, y, alpha, out=None):
        """f'(x) = 1 where x > 0 (equivalently y > 0), alpha elsewhere."""
        slope = self.xp.where(self.xp.greater(y, 0), 1.0, alpha).astype(dy.dtype, copy=False)
        return self.xp.multiply(dy, slope, out=out)

    def softmax(self, x, out=None):
        """exp(x - max) / sum(exp(x - max)) over the last axis."""
        xp = self.xp
        out = xp.subtract(x, xp.max(x, axis=-1, keepdims=True), out=out)
        xp.exp(out, out=out)
        out /= xp.sum(out, axis=-1, keepdims=True)
        return out

    def backprop_softmax(self, dy, y, out=None):
        """Jacobian-vector product: dx = y * (dy - sum(dy * y, axis=-1))."""
        xp = self.xp
        dot = xp.sum(dy * y, axis=-1, keepdims=True)
        out = xp.subtract(dy, dot, out=out)
        out *= y
        return out

    # ------------------------------------------------------------------ losses
    # Each ``<loss>(pred, target)`` returns the batch *sum* of per-example losses (0-d array);
    # each ``<loss>_grad(pred, target)`` returns d(mean loss)/d(pred).
    def mse(self, pred, target):
        """sum_i mean_j (target_ij - pred_ij)^2."""
        diff = pred - target
        return (diff * diff).sum() / pred.shape[-1]

    def mse_grad(self, pred, target, out=None):
        """2 (pred - target) / (N F)."""
        out = self.xp.subtract(pred, target, out=out)
        out *= 2.0 / pred.size
        return out

    def mae(self, pred, target):
        """sum_i mean_j |target_ij - pred_ij|."""
        return self.xp.abs(pred - target).sum() / pred.shape[-1]

    def mae_grad(self, pred, target, out=None):
        """sign(pred - target) / (N F)."""
        out = self.xp.subtract(pred, target, out=out)
        self.xp.sign(out, out=out)
        out *= 1.0 / pred.size
        return out

    def binary_crossentropy(self, pred, target):
        """sum_i mean_j -(t log p + (1 - t) log(1 - p)), p clipped to [eps, 1 - eps]."""
        xp = self.xp
        p = xp.clip(pred, EPSILON, 1.0 - EPSILON)
        losses = target * xp.log(p) + (1.0 - target) * xp.log1p(-p)
        return -losses.sum() / pred.shape[-1]

    def binary_crossentropy_grad(self, pred, target, out=None):
        """(p - t) / (p (1 - p)) / (N F) where eps < p < 1 - eps; 0 where the clip is active."""
        xp = self.xp
        p = xp.clip(pred, EPSILON, 1.0 - EPSILON)
        inside = (pred > EPSILON) & (pred < 1.0 - EPSILON)
        grad = (p - target) / (p * (1.0 - p)) * inside
        out = self._assign(out, grad) if out is not None else grad.astype(pred.dtype, copy=False)
        out *= 1.0 / pred.size
        return out

    def binary_crossentropy_from_logits(self, logits, target):
        """sum_i mean_j max(x, 0) - x t + log(1 + e^-|x|)  (stable for any x)."""
        xp = self.xp
        x = logits
        losses = xp.maximum(x, 0) - x * target + xp.log1p(xp.exp(-xp.abs(x)))
        return losses.sum() / x.shape[-1]

    def binary_crossentropy_from_logits_grad(self, logits, target, out=None):
        """(sigmoid(x) - t) / (N F)."""
        out = self.sigmoid(logits, out=out)
        out -= target
        out *= 1.0 / logits.size
        return out

    def categorical_crossentropy(self, pred, target):
        """sum_i -sum_j t_ij log p_ij, p clipped to [eps, 1 - eps]."""
        p = self.xp.clip(pred, EPSILON, 1.0 - EPSILON)
        return -(target * self.xp.log(p)).sum()

    def categorical_crossentropy_grad(self, pred, target, out=None):
        """-t / p / N where eps < p < 1 - eps; 0 where the clip is active."""
        xp = self.xp
        p = xp.clip(pred, EPSILON, 1.0 - EPSILON)
        inside = (pred > EPSILON) & (pred < 1.0 - EPSILON)
        grad = -(target / p) * inside
        out = self._assign(out, grad) if out is not None else grad.astype(pred.dtype, copy=False)
        out *= 1.0 / pred.shape[0]
        return out

    def log_softmax(self, logits, out=None):
        """x - max - log(sum(exp(x - max))) over the last axis (log-sum-exp form)."""
        xp = self.xp
        shifted = xp.subtract(logits, xp.max(logits, axis=-1, keepdims=True), out=out)
        shifted -= xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
        return shifted

    def categorical_crossentropy_from_logits(self, logits, target):
        """sum_i -sum_j t_ij log_softmax(x)_ij."""
        return -(target * self.log_softmax(logits)).sum()

    def categorical_crossentropy_from_logits_grad(self, logits, target, out=None):
        """(softmax(x) * sum_j t_j - t) / N  (= (p - t) / N for one-hot targets)."""
        out = self.softmax(logits, out=out)
        return self._softmax_ce_grad_from_probs(out, target, out)

    def sparse_categorical_crossentropy(self, pred, labels):
        """sum_i -log p_i,labels_i, p clipped to [eps, 1 - eps]."""
        picked = self._pick(pred, labels)
        return -self.xp.log(self.xp.clip(picked, EPSILON, 1.0 - EPSILON)).sum()

    def sparse_categorical_crossentropy_grad(self, pred, labels, out=None):
        """-1 / p_i,label / N at the label entry (0 where the clip is active), 0 elsewhere."""
        xp = self.xp
        out = self._zeros_out(pred, out)
        picked = self._pick(pred, labels)
        inside = (picked > EPSILON) & (picked < 1.0 - EPSILON)
        rows = xp.arange(pred.shape[0])
        out[rows, labels] = -(inside / xp.clip(picked, EPSILON, 1.0 - EPSILON)) / pred.shape[0]
        return out

    def sparse_categorical_crossentropy_from_logits(self, logits, labels):
        """sum_i -log_softmax(x)_i,labels_i."""
        return -self._pick(self.log_softmax(logits), labels).sum()

    def sparse_categorical_crossentropy_from_logits_grad(self, logits, labels, out=None):
        """(softmax(x) - onehot(label)) / N."""
        out = self.softmax(logits, out=out)
        return self._softmax_ce_grad_from_probs(out, labels, out, sparse=True)

    # ------------------------------------------------------------------ fused output losses
    def softmax_cross_entropy(self, logits, probs, target, grad_out, sparse=False):
        """Fused softmax + categorical cross-entropy on an output layer.

        ``probs`` = softmax(logits) (already computed by the forward pass). Returns the batch
        sum of -sum_j t_j log_softmax(logits)_j (log-sum-exp form, no clip) and writes the
        gradient with respect to the logits, (p * sum_j t_j - t) / N, into ``grad_out``.
        ``sparse`` means ``target`` holds integer labels.
        """
        if sparse:
            loss = self.sparse_categorical_crossentropy_from_logits(logits, target)
        else:
            loss = self.categorical_crossentropy_from_logits(logits, target)
        self._softmax_ce_grad_from_probs(probs, target, grad_out, sparse=sparse)
        return loss

    def sigmoid_binary_crossentropy(self, logits, probs, target, grad_out):
        """Fused sigmoid + binary cross-entropy: loss from the logits in the stable form,
        gradient with respect to the logits (p - t) / (N F) written into ``grad_out``."""
        loss = self.binary_crossentropy_from_logits(logits, target)
        out = self.xp.subtract(probs, target, out=grad_out)
        out *= 1.0 / probs.size
        return loss

    def _softmax_ce_grad_from_probs(self, probs, target, out, sparse=False):
        xp = self.xp
        n = probs.shape[0]
        if sparse:
            if out is not probs:
                xp.copyto(out, probs)
            out[xp.arange(n), target] -= 1.0
        else:
            row_sum = xp.sum(target, axis=-1, keepdims=True)
            xp.multiply(probs, row_sum, out=out)
            out -= target
        out *= 1.0 / n
        return out

    # ------------------------------------------------------------------ metrics & reductions
    def count_correct(self, pred, target, kind):
        """Number of correct predictions in the batch (0-d array).

        ``kind``: ``"categorical"`` argmax(pred) == argmax(target); ``"sparse"`` argmax(pred) ==
        label; ``"binary"`` (pred > 0.5) == target element-wise; ``"binary_logits"`` the same
        with the threshold at logit 0.
        """
        xp = self.xp
        if kind == "categorical":
            return xp.count_nonzero(xp.argmax(pred, axis=-1) == xp.argmax(target, axis=-1))
        if kind == "sparse":
            return xp.count_nonzero(xp.argmax(pred, axis=-1) == target.reshape(-1))
        threshold = 0.0 if kind == "binary_logits" else 0.5
        if kind in ("binary", "binary_logits"):
            return xp.count_nonzero((pred > threshold).astype(pred.dtype) == target)
        raise ValueError(f"unknown accuracy kind {kind!r}")

    def sum(self, x):
        return self.xp.sum(x)

    def argmax(self, x, axis=-1):
        return self.xp.argmax(x, axis=axis)

    def all_finite(self, x) -> bool:
        """True when no element of ``x`` is NaN or infinite (synchronises on a GPU)."""
        if x.dtype.kind not in "fc":
            return True
        return bool(self.xp.isfinite(x).all())

    def min_max(self, x):
        """(min, max) of ``x`` as Python numbers."""
        return self.xp.min(x).item(), self.xp.max(x).item()

    def count_bad_labels(self, labels, num_classes):
        """How many integer labels fall outside [0, num_classes)."""
        return int(self.xp.count_nonzero((labels < 0) | (labels >= num_classes)))

    def one_hot(self, labels, num_classes, dtype="float32"):
        """Rows e_label of the identity (``to_categorical``)."""
        out = self.xp.zeros((labels.shape[0], num_classes), dtype=dtype)
        out[self.xp.arange(labels.shape[0]), labels] = 1
        return out

    # ------------------------------------------------------------------ optimizer updates
    # Every update works in place on flat buffers holding *all* of a model's parameters.
    def sgd_update(self, w, g, velocity, lr, momentum, nesterov, weight_decay):
        """One SGD step (Keras 2 convention, velocity starts at zero).

        g' = g + weight_decay * w;  v = momentum * v - lr * g'
        w += v (momentum), w += momentum * v - lr * g' (Nesterov), w -= lr * g' (no momentum).
        ``velocity`` may be None when momentum is 0.

        Velocity entries smaller in magnitude than the smallest normal float (1.2e-38 in
        float32) are set to 0. A weight whose gradient stays 0 (a dead unit, an always-black
        pixel) would otherwise see its velocity decay by ``momentum`` each step into subnormal
        numbers, which x86 CPUs process about 100x slower; GPUs flush them anyway (CuPy compiles
        with -ftz), and so does TensorFlow on the CPU.
        """
        xp = self.xp
        step = self.scratch("sgd_step", w.shape, w.dtype)
        if weight_decay:
            xp.multiply(w, weight_decay, out=step)
            step += g
            xp.multiply(step, lr, out=step)
        else:
            xp.multiply(g, lr, out=step)  # step = lr * g'
        if not momentum:
            w -= step
            return
        velocity *= momentum
        velocity -= step
        self._flush_subnormals(velocity)
        if nesterov:
            w -= step
            w += momentum * velocity
        else:
            w += velocity

    def rmsprop_update(self, w, g, mean_square, lr, rho, epsilon, momentum, velocity, centered, mean_grad):
        """RMSprop (Keras 3 / TF 2, epsilon inside the root; PyTorch adds it outside):
        ms = rho ms + (1 - rho) g^2;  mg = rho mg + (1 - rho) g (only when ``centered``);
        step = lr g / sqrt(ms - mg^2 + eps)  (mg = 0 when not centered);
        with momentum: v = momentum v + step, w -= v;  otherwise w -= step."""
        xp = self.xp
        mean_square *= rho
        mean_square += (1.0 - rho) * g * g
        if centered:
            mean_grad *= rho
            mean_grad += (1.0 - rho) * g
            denom = mean_square - mean_grad * mean_grad
        else:
            denom = mean_square + 0.0
        denom += epsilon
        xp.sqrt(denom, out=denom)
        increment = lr * g / denom
        if momentum:
            velocity *= momentum
            velocity += increment
            w -= velocity
        else:
            w -= increment

    def adagrad_update(self, w, g, accumulator, lr, epsilon):
        """Adagrad (Keras 3, epsilon inside the root): acc += g^2;  w -= lr g / sqrt(acc + eps)."""
        accumulator += g * g
        w -= lr * g / self.xp.sqrt(accumulator + epsilon)

    def adadelta_update(self, w, g, accum_grad, accum_delta, lr, rho, epsilon):
        """Adadelta (Keras): Eg = rho Eg + (1 - rho) g^2;
        d = sqrt(Edx + eps) / sqrt(Eg + eps) g;  Edx = rho Edx + (1 - rho) d^2;  w -= lr d."""
        xp = self.xp
        accum_grad *= rho
        accum_grad += (1.0 - rho) * g * g
        delta = xp.sqrt(accum_delta + epsilon) / xp.sqrt(accum_grad + epsilon) * g
        accum_delta *= rho
        accum_delta += (1.0 - rho) * delta * delta
        w -= lr * delta

    def adam_update(self, w, g, m, v, lr, beta_1, beta_2, epsilon, t, amsgrad=False, v_max=None):
        """Adam (Keras): m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
        alpha = lr sqrt(1 - b2^(t+1)) / (1 - b1^(t+1));  w -= alpha m / (sqrt(v) + eps)
        (AMSGrad: v_max = max(v_max, v) replaces v in the denominator). ``t`` = steps done."""
        xp = self.xp
        m *= beta_1
        m += (1.0 - beta_1) * g
        v *= beta_2
        v += (1.0 - beta_2) * g * g
        alpha = lr * (1.0 - beta_2 ** (t + 1)) ** 0.5 / (1.0 - beta_1 ** (t + 1))
        if amsgrad:
            xp.maximum(v_max, v, out=v_max)
            denom = xp.sqrt(v_max)
        else:
            denom = xp.sqrt(v)
        denom += epsilon
        w -= alpha * m / denom

    def adamax_update(self, w, g, m, u, lr, beta_1, beta_2, epsilon, t):
        """Adamax (Keras): m = b1 m + (1 - b1) g;  u = max(b2 u, |g|);
        w -= lr / (1 - b1^(t+1)) * m / (u + eps)."""
        xp = self.xp
        m *= beta_1
        m += (1.0 - beta_1) * g
        xp.maximum(u * beta_2, xp.abs(g), out=u)
        w -= (lr / (1.0 - beta_1 ** (t + 1))) * m / (u + epsilon)

    def nadam_update(self, w, g, m, v, lr, beta_1, beta_2, epsilon, mu_t, mu_next, mu_product, t):
        """Nadam (Keras 3): m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
        m_hat = mu_{t+1} m / (1 - mu_prod * mu_{t+1}) + (1 - mu_t) g / (1 - mu_prod);
        v_hat = v / (1 - b2^(t+1));  w -= lr m_hat / (sqrt(v_hat) + eps),
        with mu_prod = prod_{i<=t} mu_i (including the current mu_t) passed in by the optimizer."""
        xp = self.xp
        m *= beta_1
        m += (1.0 - beta_1) * g
        v *= beta_2
        v += (1.0 - beta_2) * g * g
        m_hat = (mu_next / (1.0 - mu_product * mu_next)) * m + ((1.0 - mu_t) / (1.0 - mu_product)) * g
        v_hat = v / (1.0 - beta_2 ** (t + 1))
        w -= lr * m_hat / (xp.sqrt(v_hat) + epsilon)

    def global_norm(self, g):
        """sqrt(sum g^2) as a 0-d array."""
        return self.xp.sqrt(self.xp.vdot(g, g))

    def scale_(self, x, factor):
        """x *= factor in place."""
        x *= factor
        return x

    def clip_(self, x, low, high):
        """Clip ``x`` to [low, high] in place."""
        return self.xp.clip(x, low, high, out=x)

    # ------------------------------------------------------------------ helpers
    def _flush_subnormals(self, x):
        """Set the entries of ``x`` with |x| < the smallest normal float of its dtype to +0."""
        x[self.xp.abs(x) < self.xp.finfo(x.dtype).tiny] = 0

    def _pick(self, x, labels):
        return x[self.xp.arange(x.shape[0]), labels.reshape(-1)]

    def _zeros_out(self, like, out):
        if out is None:
            return self.xp.zeros_like(like)
        out[...] = 0
        return out

    def _assign(self, out, value):
        out[...] = value
        return out
