"""Optimizers, in order of increasing state: SGD (momentum, Nesterov, decay, weight decay),
RMSprop, Adagrad, Adadelta, Adam / AMSGrad, Adamax, Nadam, with Keras' names and defaults. Each
docstring gives the update; each is one backend call over the flat buffers
(:class:`~tensornet.optim.optimizer.Optimizer` fixes the order of a step)."""
from __future__ import annotations

from ..backend.registry import resolve
from .optimizer import Optimizer, check_number, learning_rate_schedule


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov, decay and L2 weight decay.

    Keras 2 / tf.keras semantics, velocity v starting at zero, t = updates already applied:

        lr_t = lr / (1 + decay * t)                       (an InverseTimeDecay schedule)
        g    = dL/dw + weight_decay * w                   (L2, coupled)
        v    = momentum * v - lr_t * g
        w    = w + v                                      (momentum)
        w    = w + momentum * v - lr_t * g                (Nesterov)
        w    = w - lr_t * g                               (momentum = 0)

    With a constant lr this is ``torch.optim.SGD(lr, momentum, weight_decay=..., nesterov=...)``
    exactly (torch's buffer b = -v / lr). ``lr`` and ``learning_rate`` are the same argument.
    """

    name = "sgd"

    def __init__(self, lr=None, momentum=0.0, decay=0.0, nesterov=False, weight_decay=0.0, *,
                 learning_rate=None, **kwargs):
        super().__init__(learning_rate_schedule(lr, learning_rate, 0.01, decay), **kwargs)
        self.momentum = check_number(momentum, "momentum")
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False; got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0; got momentum=0")
        self.nesterov = nesterov
        self.weight_decay = check_number(weight_decay, "weight_decay")

    def state_spec(self):
        return (("velocity", 0.0),) if self.momentum else ()

    def update(self, ops, params, grads, state, lr, t):
        ops.sgd_update(params, grads, state.get("velocity"), lr, self.momentum, self.nesterov,
                       self.weight_decay)

    def describe(self) -> dict:
        """:meth:`Optimizer.describe` plus ``momentum``, ``nesterov``, ``weight_decay`` and
        ``velocity``: the velocity buffer of the only parameter dtype (None without momentum, or
        before ``build``, or with several dtypes)."""
        groups = list(self.state.values())
        velocity = groups[0].get("velocity") if len(groups) == 1 else None
        return {**super().describe(), "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay, "velocity": velocity}

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    """RMSprop, Keras defaults lr=0.001, rho=0.9, momentum=0, epsilon=1e-7, centered=False.

        ms = rho ms + (1 - rho) g^2                  (ms starts at 0)
        mg = rho mg + (1 - rho) g                    (centered only; starts at 0)
        step = lr g / sqrt(ms - mg^2 + epsilon)      (epsilon inside the root as in Keras 3 / TF;
                                                      PyTorch: lr g / (sqrt(ms) + eps), eps=1e-8, alpha=0.99)
        v = momentum v + step; w -= v                (momentum > 0; v starts at 0)
        w -= step                                    (momentum = 0)
    """

    name = "rmsprop"

    def __init__(self, learning_rate=None, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, *,
                 lr=None, decay=0.0, **kwargs):
        super().__init__(learning_rate_schedule(lr, learning_rate, 0.001, decay), **kwargs)
        self.rho = check_number(rho, "rho", maximum=1.0)
        self.momentum = check_number(momentum, "momentum")
        self.epsilon = check_number(epsilon, "epsilon")
        self.centered = bool(centered)

    def state_spec(self):
        spec = [("mean_square", 0.0)]
        if self.momentum:
            spec.append(("velocity", 0.0))
        if self.centered:
            spec.append(("mean_grad", 0.0))
        return tuple(spec)

    def update(self, ops, params, grads, state, lr, t):
        ops.rmsprop_update(params, grads, state["mean_square"], lr, self.rho, self.epsilon, self.momentum,
                           state.get("velocity"), self.centered, state.get("mean_grad"))


class Adagrad(Optimizer):
    """Adagrad, Keras defaults lr=0.001, initial_accumulator_value=0.1, epsilon=1e-7.

        acc = acc + g^2                      (acc starts at initial_accumulator_value)
        w  -= lr g / sqrt(acc + epsilon)     (Keras 3; PyTorch: lr g / (sqrt(acc) + 1e-10), acc0 = 0)
    """

    name = "adagrad"

    def __init__(self, learning_rate=None, initial_accumulator_value=0.1, epsilon=1e-7, *, lr=None,
                 decay=0.0, **kwargs):
        super().__init__(learning_rate_schedule(lr, learning_rate, 0.001, decay), **kwargs)
        self.initial_accumulator_value = check_number(initial_accumulator_value, "initial_accumulator_value")
        self.epsilon = check_number(epsilon, "epsilon")

    def state_spec(self):
        return (("accumulator", self.initial_accumulator_value),)

    def update(self, ops, params, grads, state, lr, t):
        ops.adagrad_update(params, grads, state["accumulator"], lr, self.epsilon)


class Adadelta(Optimizer):
    """Adadelta, Keras defaults lr=0.001, rho=0.95, epsilon=1e-7 (PyTorch: lr=1.0, rho=0.9, eps=1e-6).

        Eg  = rho Eg + (1 - rho) g^2                           (starts at 0)
        d   = sqrt(Edx + epsilon) / sqrt(Eg + epsilon) * g
        Edx = rho Edx + (1 - rho) d^2                          (starts at 0)
        w  -= lr d
    """

    name = "adadelta"
    STATE = (("accum_grad", 0.0), ("accum_delta", 0.0))

    def __init__(self, learning_rate=None, rho=0.95, epsilon=1e-7, *, lr=None, decay=0.0, **kwargs):
        super().__init__(learning_rate_schedule(lr, learning_rate, 0.001, decay), **kwargs)
        self.rho = check_number(rho, "rho", maximum=1.0)
        self.epsilon = check_number(epsilon, "epsilon")

    def update(self, ops, params, grads, state, lr, t):
        ops.adadelta_update(params, grads, state["accum_grad"], state["accum_delta"], lr, self.rho,
                            self.epsilon)


class Adam(Optimizer):
    """Adam, Keras defaults lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7 (PyTorch eps=1e-8).

        m = beta_1 m + (1 - beta_1) g;  v = beta_2 v + (1 - beta_2) g^2     (both start at 0)
        alpha = lr sqrt(1 - beta_2^(t+1)) / (1 - beta_1^(t+1))
        w -= alpha m / (sqrt(v) + epsilon)      (epsilon outside the root, scaled with alpha as in
                                                 Keras; PyTorch adds eps to sqrt(v_hat))
        AMSGrad: v_max = max(v_max, v) replaces v in the denominator.
    """

    name = "adam"

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, *,
                 lr=None, decay=0.0, **kwargs):
        super().__init__(learning_rate_schedule(lr, learning_rate, 0.001, decay), **kwargs)
        self.beta_1 = check_number(beta_1, "beta_1", maximum=1.0, strict_max=True)
        self.beta_2 = check_number(beta_2, "beta_2", maximum=1.0, strict_max=True)
        self.epsilon = check_number(epsilon, "epsilon")
        self.amsgrad = bool(amsgrad)

    def describe(self) -> dict:
        """:meth:`Optimizer.describe` plus ``beta_1``, ``beta_2``, ``epsilon``, ``amsgrad`` and the
        moment buffers ``m`` and ``v`` of the only parameter dtype (None before ``build``, or with
        several dtypes)."""
        groups = list(self.state.values())
        group = groups[0] if len(groups) == 1 else {}
        return {**super().describe(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad, "m": group.get("m"), "v": group.get("v")}

    def state_spec(self):
        spec = (("m", 0.0), ("v", 0.0))
        return spec + (("v_max", 0.0),) if self.amsgrad else spec

    def update(self, ops, params, grads, state, lr, t):
        ops.adam_update(params, grads, state["m"], state["v"], lr, self.beta_1, self.beta_2, self.epsilon,
                        t, self.amsgrad, state.get("v_max"))


class Adamax(Optimizer):
    """Adamax, Keras defaults lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7.

        m = beta_1 m + (1 - beta_1) g;  u = max(beta_2 u, |g|)               (both start at 0)
        w -= lr / (1 - beta_1^(t+1)) * m / (u + epsilon)
    """

    name = "adamax"
    STATE = (("m", 0.0), ("u", 0.0))

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, *, lr=None, decay=0.0,
                 **kwargs):
        super().__init__(learning_rate_schedule(lr, learning_rate, 0.001, decay), **kwargs)
        self.beta_1 = check_number(beta_1, "beta_1", maximum=1.0, strict_max=True)
        self.beta_2 = check_number(beta_2, "beta_2", maximum=1.0, strict_max=True)
        self.epsilon = check_number(epsilon, "epsilon")

    def update(self, ops, params, grads, state, lr, t):
        ops.adamax_update(params, grads, state["m"], state["u"], lr, self.beta_1, self.beta_2,
                          self.epsilon, t)


class Nadam(Optimizer):
    """Nadam (Keras 3), defaults lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7.

        mu_t = beta_1 (1 - 0.5 * 0.96^(t+1));  mu_prod = prod_{i<=t} mu_i     (mu_prod starts at 1)
        m = beta_1 m + (1 - beta_1) g;  v = beta_2 v + (1 - beta_2) g^2
        m_hat = mu_{t+1} m / (1 - mu_prod mu_{t+1}) + (1 - mu_t) g / (1 - mu_prod)
        v_hat = v / (1 - beta_2^(t+1));  w -= lr m_hat / (sqrt(v_hat) + epsilon)
    """

    name = "nadam"
    STATE = (("m", 0.0), ("v", 0.0))

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, *, lr=None, decay=0.0,
                 **kwargs):
        super().__init__(learning_rate_schedule(lr, learning_rate, 0.001, decay), **kwargs)
        self.beta_1 = check_number(beta_1, "beta_1", maximum=1.0, strict_max=True)
        self.beta_2 = check_number(beta_2, "beta_2", maximum=1.0, strict_max=True)
        self.epsilon = check_number(epsilon, "epsilon")
        self.mu_product = 1.0

    def _mu(self, step):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** (step + 1))

    def update(self, ops, params, grads, state, lr, t):
        mu_t, mu_next = self._mu(t), self._mu(t + 1)
        mu_product = self.mu_product * mu_t
        ops.nadam_update(params, grads, state["m"], state["v"], lr, self.beta_1, self.beta_2, self.epsilon,
                         mu_t, mu_next, mu_product, t)

    def apply(self, store):
        lr = super().apply(store)
        self.mu_product *= self._mu(self.iterations - 1)
        return lr

    def scalar_state(self):
        return {"mu_product": self.mu_product}

    def set_scalar_state(self, scalars):
        self.mu_product = float(scalars.get("mu_product", 1.0))


_REGISTRY = {cls.name: cls for cls in (SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, Nadam)}

#: Names ``get`` accepts.
NAMES = tuple(sorted(_REGISTRY))


def get(identifier, argument: str = "optimizer") -> Optimizer:
    """The optimizer ``identifier`` names, with Keras' defaults for a string."""
    return resolve(identifier, _REGISTRY, Optimizer, "optimizer", argument)

