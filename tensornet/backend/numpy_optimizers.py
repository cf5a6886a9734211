"""The NumPy backend's optimizer updates: each ``<rule>_update`` runs as one Numba pass over the
flat buffers (:mod:`._numba_kernels`, the kernel of the same name) where Numba is in use and the
buffers suit it, and as :class:`~tensornet.backend.optimizer_ops.OptimizerOps`' reference
(``super()``) otherwise. The reference's NumPy expressions are 6-15 passes with temporaries;
the kernels follow its order of operations, so they match it bit for bit (bench/README.md
gives the times).
"""
from __future__ import annotations

import numpy


class NumpyOptimizerOps:
    """The Numba updates (a mixin of :class:`~tensornet.backend.numpy_backend.NumpyBackend`, which
    provides ``_kernels``, ``_kernel`` and ``_flat_kernel``)."""

    def sgd_update(self, w, g, velocity, lr, momentum, nesterov, weight_decay):
        nb = self._kernels()
        if (nb is not None and w.ndim == 1 and g.shape == w.shape and w.flags.c_contiguous
                and g.flags.c_contiguous and (velocity is None or velocity.flags.c_contiguous)):
            arrays = (w, g) if not momentum else (w, g, velocity)
            kernel = self._kernel(nb.sgd_update, w.size, *arrays)
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
            kernel = self._flat_kernel(nb.rmsprop_update, w, *arrays)
            if kernel is not None:
                t = w.dtype.type
                kernel(w, g, mean_square, mean_grad if centered else w, velocity if momentum else w,
                       t(lr), t(rho), t(1.0 - rho), t(epsilon), t(momentum), bool(centered), bool(momentum))
                return
        super().rmsprop_update(w, g, mean_square, lr, rho, epsilon, momentum, velocity, centered, mean_grad)

    def adagrad_update(self, w, g, accumulator, lr, epsilon):
        nb = self._kernels()
        if nb is not None:
            kernel = self._flat_kernel(nb.adagrad_update, w, g, accumulator)
            if kernel is not None:
                t = w.dtype.type
                kernel(w, g, accumulator, t(lr), t(epsilon))
                return
        super().adagrad_update(w, g, accumulator, lr, epsilon)

    def adadelta_update(self, w, g, accum_grad, accum_delta, lr, rho, epsilon):
        nb = self._kernels()
        if nb is not None:
            kernel = self._flat_kernel(nb.adadelta_update, w, g, accum_grad, accum_delta)
            if kernel is not None:
                t = w.dtype.type
                kernel(w, g, accum_grad, accum_delta, t(lr), t(rho), t(1.0 - rho), t(epsilon))
                return
        super().adadelta_update(w, g, accum_grad, accum_delta, lr, rho, epsilon)

    def adam_update(self, w, g, m, v, lr, beta_1, beta_2, epsilon, t, amsgrad=False, v_max=None):
        nb = self._kernels()
        if nb is not None:
            kernel = self._flat_kernel(nb.adam_update, w, g, m, v, *((v_max,) if amsgrad else ()))
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
            kernel = self._flat_kernel(nb.adamax_update, w, g, m, u)
            if kernel is not None:
                T = w.dtype.type
                kernel(w, g, m, u, T(lr / (1.0 - beta_1 ** (t + 1))), T(beta_1), T(1.0 - beta_1), T(beta_2),
                       T(epsilon))
                return
        super().adamax_update(w, g, m, u, lr, beta_1, beta_2, epsilon, t)

    def nadam_update(self, w, g, m, v, lr, beta_1, beta_2, epsilon, mu_t, mu_next, mu_product, t):
        nb = self._kernels()
        if nb is not None:
            kernel = self._flat_kernel(nb.nadam_update, w, g, m, v)
            if kernel is not None:
                T = w.dtype.type
                m_coef = mu_next / (1.0 - mu_product * mu_next)
                g_coef = (1.0 - mu_t) / (1.0 - mu_product)
                kernel(w, g, m, v, T(lr), T(beta_1), T(1.0 - beta_1), T(beta_2), T(1.0 - beta_2), T(epsilon),
                       T(m_coef), T(g_coef), T(1.0 - beta_2 ** (t + 1)))
                return
        super().nadam_update(w, g, m, v, lr, beta_1, beta_2, epsilon, mu_t, mu_next, mu_product, t)
