"""Array operations of :class:`~tensornet.backend.base.Backend`: creating and moving arrays,
random draws, matrix products, batch normalization and reductions, written once against
``self.xp`` (NumPy or CuPy)."""
from __future__ import annotations

import numpy

_FLOATS = (numpy.dtype("float32"), numpy.dtype("float64"))


def _shape(shape):
    """``shape`` as a tuple of ints (an int n is ``(n,)``)."""
    return (int(shape),) if isinstance(shape, (int, numpy.integer)) else tuple(int(n) for n in shape)


class ArrayOps:
    """Arrays, random draws, linear algebra, batch normalization and reductions over ``self.xp``
    (a mixin of :class:`~tensornet.backend.base.Backend`, which provides ``xp`` and ``scratch``)."""

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

    def lasting_zeros(self, shape, dtype="float32"):
        """A zeroed buffer kept from step to step: a model's flat parameters, gradients and
        optimizer state, its layers' workspaces, the backend's scratch buffers. The NumPy
        backend puts large ones on huge pages (:mod:`.huge_pages`)."""
        return self.xp.zeros(shape, dtype=dtype)

    def copy(self, x):
        return self.xp.array(x, copy=True)

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

        u = rng.random(size=shape, dtype=T) with T the mask's dtype when it is float32 / float64,
        else float64; mask = (u >= T(rate)) * dtype(1 / (1 - rate)), written over the draws (the
        keep flags in a scratch buffer). The draws go straight into ``out`` when it is a host
        array of the draw's dtype (the NumPy backend's case: no temporary)."""
        dtype, shape = numpy.dtype(dtype), _shape(shape)
        draw = dtype if dtype in _FLOATS else numpy.dtype("float64")
        u = self._uniform_draws(rng, shape, draw, out)
        keep = numpy.greater_equal(u, draw.type(rate), out=self._host_scratch("dropout_keep", shape, numpy.bool_))
        numpy.multiply(keep, dtype.type(1.0 / (1.0 - rate)), out=u)
        mask = self.asarray(u if draw == dtype else u.astype(dtype))
        if out is None or mask is out:
            return mask
        out[...] = mask
        return out

    def dropout_forward(self, x, rng, rate, mask_out=None, out=None):
        """Inverted dropout in training: mask = :meth:`dropout_mask` (rng, x.shape, rate,
        x.dtype) (the same draws), y = x * mask. Returns ``(y, mask)``, written to ``out`` and
        ``mask_out`` when given (``mask_out`` must not alias ``x``)."""
        mask = self.dropout_mask(rng, x.shape, rate, x.dtype, out=mask_out)
        return self.multiply(x, mask, out=out), mask

    def _host_scratch(self, key, shape, dtype):
        """A reusable host work buffer: :meth:`scratch` where the backend's arrays live on the
        host, else a new NumPy array."""
        if self.xp is numpy:
            return self.scratch(key, shape, dtype)
        return numpy.empty(shape, dtype)

    def _uniform_draws(self, rng, shape, dtype, out):
        """``rng.random(size=shape, dtype=dtype)`` on the host, drawn into ``out`` when it is a
        C-contiguous NumPy array of that shape and dtype (the same stream either way)."""
        if (isinstance(out, numpy.ndarray) and out.dtype == dtype and out.shape == shape
                and out.flags.c_contiguous):
            return rng.random(dtype=dtype, out=out)
        return rng.random(size=shape, dtype=dtype)

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
        """Column sums ``sum_i x[i, :]`` (the bias gradient), as the ufunc's own reduction
        (``xp.sum`` adds a Python dispatch layer over it)."""
        return self.xp.add.reduce(x, axis=0, out=out)

    # ------------------------------------------------------------------ batch normalization
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
        inv_std = self._batch_norm_scale(x_hat, var, gamma, beta, epsilon, y)
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

    def _batch_norm_scale(self, x_hat, var, gamma, beta, epsilon, y):
        """The end of both training-mode forwards, with ``x_hat`` holding x - mean on entry:
        inv_std = 1 / sqrt(var + epsilon); x_hat *= inv_std; y = gamma x_hat + beta (into ``y``).
        Returns inv_std."""
        xp = self.xp
        inv_std = xp.sqrt(var + epsilon)
        inv_std = xp.divide(1.0, inv_std, out=inv_std)
        x_hat *= inv_std
        if gamma is not None:
            xp.multiply(x_hat, gamma, out=y)
        else:
            xp.copyto(y, x_hat)
        if beta is not None:
            y += beta
        return inv_std

    def update_moving(self, moving, value, momentum):
        """Exponential moving average in place (Keras): moving = moving * momentum + value * (1 - momentum)."""
        moving *= momentum
        moving += value * (1.0 - momentum)
        return moving

    def batch_norm_forward_synchronized(self, x, gamma, beta, epsilon, all_sum, out=None, x_hat_out=None):
        """Training-mode batch normalization with the statistics of the global batch: the rows of
        every rank of a data-parallel step. ``all_sum(buffer)`` replaces a 1-D buffer by its sum
        over the ranks, in place. With this rank's n_r rows of ``x`` (..., F), N = sum_r n_r:

        [sum_r sum_i x_i, N] = all_sum([sum_i x_i, n_r]);  mean = sum_r sum_i x_i / N;
        var = all_sum(sum_i (x_i - mean)^2) / N  (squared deviations, not E[x^2] - mean^2, so
        nothing cancels); inv_std, x_hat and y as :meth:`batch_norm_forward`.

        Returns ``(y, x_hat, inv_std, mean, var, count)``, ``count`` = N as a 0-d array (read
        by :meth:`batch_norm_backward_synchronized`). A rank with no rows this step calls it with
        an empty ``x`` so the sums over the ranks still meet."""
        xp = self.xp
        features = x.shape[-1]
        sums = xp.empty(features + 1, dtype=x.dtype)
        xp.sum(x.reshape(-1, features), axis=0, out=sums[:features])
        sums[features] = x.size // features
        all_sum(sums)
        count = sums[features]
        mean = sums[:features] / count
        x_hat = xp.subtract(x, mean, out=x_hat_out)
        y = xp.multiply(x_hat, x_hat, out=out)
        var = all_sum(xp.sum(y.reshape(-1, features), axis=0))
        var /= count
        inv_std = self._batch_norm_scale(x_hat, var, gamma, beta, epsilon, y)
        return y, x_hat, inv_std, mean, var, count

    def batch_norm_backward_synchronized(self, dy, x_hat, inv_std, gamma, count, all_sum, dx_out=None,
                                         dgamma_out=None, dbeta_out=None):
        """Gradients of :meth:`batch_norm_forward_synchronized` on this rank's n_r rows, ``dy``
        being the gradient of this rank's mean loss (the data-parallel step then weights this
        rank's weight gradients by n_r / N and sums them over the ranks, ``count`` = N):

        dbeta = sum_i dy_i;  dgamma = sum_i dy_i x_hat_i  (this rank's, for its weight gradients);
        [S_b, S_g] = all_sum((n_r / N) [dbeta, dgamma])  (the global batch's sums, in units of
        the global mean loss);  dx = gamma inv_std (dy - (S_b + x_hat S_g) / n_r),

        that is (N / n_r) dL/dx of the global mean loss L, in the units of this rank's backward.
        With one rank (n_r = N) this is :meth:`batch_norm_backward`. Returns ``(dx, dgamma, dbeta)``."""
        xp = self.xp
        features = dy.shape[-1]
        rows = dy.size // features
        dbeta = xp.sum(dy.reshape(-1, features), axis=0, out=dbeta_out)
        dx = xp.multiply(dy, x_hat, out=dx_out)
        dgamma = xp.sum(dx.reshape(-1, features), axis=0, out=dgamma_out)
        sums = xp.empty(2 * features, dtype=dy.dtype)
        sums[:features] = dbeta
        sums[features:] = dgamma
        sums *= rows / count
        all_sum(sums)
        inverse_rows = 1.0 / rows if rows else 0.0
        # dx = (dy - S_b / n_r - x_hat S_g / n_r) gamma inv_std
        xp.multiply(x_hat, sums[features:] * inverse_rows, out=dx)
        dx += sums[:features] * inverse_rows
        xp.subtract(dy, dx, out=dx)
        dx *= inv_std if gamma is None else gamma * inv_std
        return dx, dgamma, dbeta

    # ------------------------------------------------------------------ reductions
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
