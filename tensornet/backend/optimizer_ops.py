"""Optimizer updates of :class:`~tensornet.backend.base.Backend`, written once against ``self.xp``.

Every update works in place on flat buffers holding *all* of a model's parameters (and the
optimizer's state of the same shape).
"""
from __future__ import annotations


class OptimizerOps:
    """One ``<rule>_update`` per optimizer, with its equations in the docstring, plus the
    gradient-clipping helpers (a mixin of :class:`~tensornet.backend.base.Backend`)."""

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

    # ------------------------------------------------------------------ clipping
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
