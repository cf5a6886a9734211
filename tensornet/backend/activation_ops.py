"""Activations of :class:`~tensornet.backend.base.Backend`, forward and backward, written once
against ``self.xp``.

Backward functions take the activation's *output* ``y`` (every supported activation's derivative
is a function of its output), so forward may run in place.
"""
from __future__ import annotations


class ActivationOps:
    """Each activation f as ``<name>(x, out=None)`` and its gradient ``backprop_<name>(dy, y, out=None)``
    = dy * f'(x) from y = f(x) (a mixin of :class:`~tensornet.backend.base.Backend`)."""

    def bias_activation(self, z, bias, activation, out=None, alpha=0.0):
        """``z += bias`` (broadcast over the rows) in place, then ``out = activation(z)``;
        returns ``out``. Fused into one pass where a backend has a kernel for it."""
        self.bias_add(z, bias, out=z)
        return self.activation(activation, z, out=out, alpha=alpha)

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
        """f'(x) = 1[x > 0] = 1[y > 0]: dy * 1[y > 0], the mask in a scratch buffer."""
        mask = self.xp.greater(y, 0, out=self.scratch("relu_mask", y.shape, bool))
        return self.xp.multiply(dy, mask, out=out)

    def leaky_relu(self, x, alpha, out=None):
        """max(alpha x, x) for 0 <= alpha < 1."""
        return self.xp.maximum(x, self.xp.multiply(x, alpha), out=out)

    def backprop_leaky_relu(self, dy, y, alpha, out=None):
        """f'(x) = 1 where x > 0 (equivalently y > 0), alpha elsewhere."""
        slope = self.xp.where(self.xp.greater(y, 0), 1.0, alpha).astype(dy.dtype, copy=False)
        return self.xp.multiply(dy, slope, out=out)

    def softmax(self, x, out=None):
        """exp(x - m) / s over the last axis, m = max(x), s = sum(exp(x - m)); m and s share one
        scratch buffer of one entry per row."""
        xp = self.xp
        row = self.scratch("softmax_row", x.shape[:-1] + (1,), x.dtype)
        xp.max(x, axis=-1, keepdims=True, out=row)
        out = xp.subtract(x, row, out=out)
        xp.exp(out, out=out)
        xp.sum(out, axis=-1, keepdims=True, out=row)
        out /= row
        return out

    def backprop_softmax(self, dy, y, out=None):
        """Jacobian-vector product: dx = y * (dy - sum(dy * y, axis=-1))."""
        xp = self.xp
        dot = xp.sum(dy * y, axis=-1, keepdims=True)
        out = xp.subtract(dy, dot, out=out)
        out *= y
        return out
