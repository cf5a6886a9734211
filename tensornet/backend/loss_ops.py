"""Losses, their gradients, the fused output losses and the accuracy count of
:class:`~tensornet.backend.base.Backend`, written once against ``self.xp``.

Each ``<loss>(pred, target)`` returns the batch *sum* of per-example losses as a 0-d array on
the device (no host synchronisation); each ``<loss>_grad(pred, target)`` returns d(mean loss)/d(pred).
"""
from __future__ import annotations

#: Clip applied to probabilities by the cross-entropy losses (Keras' epsilon).
EPSILON = 1e-7


class LossOps:
    """Losses over ``self.xp`` (a mixin of :class:`~tensornet.backend.base.Backend`)."""

    # ------------------------------------------------------------------ losses
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
        """x - m - log(sum(exp(x - m))) over the last axis, m = max(x) (log-sum-exp form); the
        row values and exp(x - m) live in scratch buffers."""
        xp = self.xp
        row = self.scratch("log_softmax_row", logits.shape[:-1] + (1,), logits.dtype)
        xp.max(logits, axis=-1, keepdims=True, out=row)
        shifted = xp.subtract(logits, row, out=out)
        exp = xp.exp(shifted, out=self.scratch("log_softmax_exp", logits.shape, logits.dtype))
        xp.sum(exp, axis=-1, keepdims=True, out=row)
        xp.log(row, out=row)
        shifted -= row
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
    def softmax_cross_entropy_count(self, logits, probs, target, grad_out, sparse=False):
        """:meth:`softmax_cross_entropy` plus the number of rows whose argmax(probs) equals the
        target's argmax (or label): ``(loss sum, correct)``, both 0-d device arrays. A backend
        with a fused kernel counts in the same pass; this reference is the two ops in turn."""
        loss = self.softmax_cross_entropy(logits, probs, target, grad_out, sparse=sparse)
        return loss, self.count_correct(probs, target, "sparse" if sparse else "categorical")

    def softmax_cross_entropy(self, logits, probs, target, grad_out, sparse=False):
        """Fused softmax + categorical cross-entropy on an output layer.

        ``probs`` = softmax(logits) (already computed by the forward pass). Returns the batch
        sum of -sum_j t_j log_softmax(logits)_j (log-sum-exp form, no clip) and writes the
        gradient with respect to the logits, (p * sum_j t_j - t) / N, into ``grad_out``.
        ``sparse`` means ``target`` holds integer labels. log_softmax goes to a scratch buffer.
        """
        log_p = self.log_softmax(logits, out=self.scratch("xent_log_softmax", logits.shape, logits.dtype))
        if sparse:
            loss = -self._pick(log_p, target).sum()
        else:
            loss = -self.xp.multiply(log_p, target, out=log_p).sum()
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
        """out = (p * sum_j t_j - t) / N (sparse: (p - onehot(label)) / N); ``out`` may be ``probs``."""
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

    # ------------------------------------------------------------------ metrics
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

    # ------------------------------------------------------------------ helpers
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
