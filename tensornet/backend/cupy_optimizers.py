"""The CuPy backend's optimizer updates: each ``<rule>_update`` is one launch of the kernel of the
same name in ``kernels/optimizers.cu`` over the whole flat parameter buffer, in the order of
operations of :class:`~tensornet.backend.optimizer_ops.OptimizerOps`' reference.

Imports no CuPy: the launches go through :class:`~tensornet.backend.cupy_backend.CupyBackend`.
"""
from __future__ import annotations

import numpy


class CupyOptimizerOps:
    """The fused updates (a mixin of :class:`~tensornet.backend.cupy_backend.CupyBackend`, which
    provides ``_check_update``, ``_check_like`` and ``_launch_update``)."""

    def sgd_update(self, w, g, velocity, lr, momentum, nesterov, weight_decay):
        """One SGD step in one kernel (formulas: :meth:`Backend.sgd_update`)."""
        where = "sgd_update"
        ctype, t = self._check_update(where, w, g)
        if momentum:
            self._check_like(velocity, "velocity", w, "w", where)
        else:
            velocity = w  # never read when momentum == 0
        self._launch_update(where, ctype, w, (
            w, g, velocity, t(lr), t(momentum), t(weight_decay),
            numpy.int32(bool(momentum)), numpy.int32(bool(nesterov)),
            numpy.int32(bool(weight_decay))))

    def rmsprop_update(self, w, g, mean_square, lr, rho, epsilon, momentum, velocity, centered, mean_grad):
        """One RMSprop step in one kernel (formulas: :meth:`Backend.rmsprop_update`)."""
        where = "rmsprop_update"
        ctype, t = self._check_update(where, w, g)
        self._check_like(mean_square, "mean_square", w, "w", where)
        if centered:
            self._check_like(mean_grad, "mean_grad", w, "w", where)
        else:
            mean_grad = w  # never read
        if momentum:
            self._check_like(velocity, "velocity", w, "w", where)
        else:
            velocity = w  # never read
        self._launch_update(where, ctype, w, (
            w, g, mean_square, mean_grad, velocity, t(lr), t(rho), t(1.0 - rho), t(epsilon),
            t(momentum), numpy.int32(bool(centered)), numpy.int32(bool(momentum))))

    def adagrad_update(self, w, g, accumulator, lr, epsilon):
        """One Adagrad step in one kernel (formulas: :meth:`Backend.adagrad_update`)."""
        where = "adagrad_update"
        ctype, t = self._check_update(where, w, g)
        self._check_like(accumulator, "accumulator", w, "w", where)
        self._launch_update(where, ctype, w, (w, g, accumulator, t(lr), t(epsilon)))

    def adadelta_update(self, w, g, accum_grad, accum_delta, lr, rho, epsilon):
        """One Adadelta step in one kernel (formulas: :meth:`Backend.adadelta_update`)."""
        where = "adadelta_update"
        ctype, t = self._check_update(where, w, g)
        self._check_like(accum_grad, "accum_grad", w, "w", where)
        self._check_like(accum_delta, "accum_delta", w, "w", where)
        self._launch_update(where, ctype, w, (
            w, g, accum_grad, accum_delta, t(lr), t(rho), t(1.0 - rho), t(epsilon)))

    def adam_update(self, w, g, m, v, lr, beta_1, beta_2, epsilon, t, amsgrad=False, v_max=None):
        """One Adam step in one kernel (formulas: :meth:`Backend.adam_update`)."""
        where = "adam_update"
        ctype, T = self._check_update(where, w, g)
        self._check_like(m, "m", w, "w", where)
        self._check_like(v, "v", w, "w", where)
        if amsgrad:
            self._check_like(v_max, "v_max", w, "w", where)
        else:
            v_max = w  # never read
        alpha = lr * (1.0 - beta_2 ** (t + 1)) ** 0.5 / (1.0 - beta_1 ** (t + 1))
        self._launch_update(where, ctype, w, (
            w, g, m, v, v_max, T(alpha), T(beta_1), T(1.0 - beta_1), T(beta_2), T(1.0 - beta_2),
            T(epsilon), numpy.int32(bool(amsgrad))))

    def adamax_update(self, w, g, m, u, lr, beta_1, beta_2, epsilon, t):
        """One Adamax step in one kernel (formulas: :meth:`Backend.adamax_update`)."""
        where = "adamax_update"
        ctype, T = self._check_update(where, w, g)
        self._check_like(m, "m", w, "w", where)
        self._check_like(u, "u", w, "w", where)
        lr_corrected = lr / (1.0 - beta_1 ** (t + 1))
        self._launch_update(where, ctype, w, (
            w, g, m, u, T(lr_corrected), T(beta_1), T(1.0 - beta_1), T(beta_2), T(epsilon)))

    def nadam_update(self, w, g, m, v, lr, beta_1, beta_2, epsilon, mu_t, mu_next, mu_product, t):
        """One Nadam step in one kernel (formulas: :meth:`Backend.nadam_update`)."""
        where = "nadam_update"
        ctype, T = self._check_update(where, w, g)
        self._check_like(m, "m", w, "w", where)
        self._check_like(v, "v", w, "w", where)
        m_coef = mu_next / (1.0 - mu_product * mu_next)
        g_coef = (1.0 - mu_t) / (1.0 - mu_product)
        v_correction = 1.0 - beta_2 ** (t + 1)
        self._launch_update(where, ctype, w, (
            w, g, m, v, T(lr), T(beta_1), T(1.0 - beta_1), T(beta_2), T(1.0 - beta_2),
            T(epsilon), T(m_coef), T(g_coef), T(v_correction)))
