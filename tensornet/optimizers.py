"""Optimizers: each applies one vectorised update to a model's whole flat parameter buffer.

The base class fixes the order of a step once: learning rate from the schedule at step t
(t = updates already applied, 0 first), gradient clipping, the optimizer's update (a single
backend call over the flat buffers: one pass on the CPU, one kernel launch on a GPU), then
t += 1. State buffers (velocities, moments) have the parameter buffer's size and start at
the values each docstring states, so save/load continues the same trajectory.
"""
from __future__ import annotations

import math

from . import schedules
from ._registry import resolve


def _number(value, argument, minimum=0.0, maximum=None, strict_min=False, strict_max=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{argument} must be a finite number; got {value!r}")
    if value < minimum or (strict_min and value == minimum):
        raise ValueError(f"{argument} must be {'>' if strict_min else '>='} {minimum}; got {value!r}")
    if maximum is not None and (value > maximum or (strict_max and value == maximum)):
        raise ValueError(f"{argument} must be {'<' if strict_max else '<='} {maximum}; got {value!r}")
    return float(value)


def _learning_rate(lr, learning_rate, default, decay):
    if lr is not None and learning_rate is not None and lr != learning_rate:
        raise ValueError(f"lr and learning_rate name the same thing; got lr={lr!r} and "
                         f"learning_rate={learning_rate!r}")
    value = learning_rate if learning_rate is not None else lr if lr is not None else default
    decay = _number(decay, "decay")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = _number(value, "learning_rate")
        return schedules.InverseTimeDecay(value, 1, decay) if decay else schedules.Constant(value)
    if decay:
        raise ValueError("decay= applies to a constant learning rate; with a schedule, put the decay in it")
    return schedules.get(value)


class Optimizer:
    """Base class: subclasses set ``STATE`` (buffer names and initial values) and ``update``."""

    name = "optimizer"
    #: (state buffer name, initial value) pairs, allocated per parameter buffer.
    STATE = ()

    def __init__(self, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None):
        self.schedule = learning_rate
        self.clipnorm = None if clipnorm is None else _number(clipnorm, "clipnorm", strict_min=True)
        self.clipvalue = None if clipvalue is None else _number(clipvalue, "clipvalue", strict_min=True)
        self.global_clipnorm = (None if global_clipnorm is None
                                else _number(global_clipnorm, "global_clipnorm", strict_min=True))
        self.iterations = 0
        self.state = {}
        self.ops = None
        #: Factor on the schedule set by ``learning_rate = ...`` on a decaying schedule (saved).
        self.lr_multiplier = 1.0

    @property
    def learning_rate(self) -> float:
        """The learning rate the next step will use: ``lr_multiplier * schedule(iterations)``."""
        return self.schedule(self.iterations) * self.lr_multiplier

    @learning_rate.setter
    def learning_rate(self, value):
        """Make the next step use ``value`` (what LearningRateScheduler and ReduceLROnPlateau
        do): a constant rate becomes ``Constant(value)``; a decaying schedule keeps its shape
        and is scaled by ``lr_multiplier = value / schedule(iterations)`` from now on."""
        value = _number(value, "learning_rate")
        if isinstance(self.schedule, schedules.Constant):
            self.schedule, self.lr_multiplier = schedules.Constant(value), 1.0
        else:
            base = self.schedule(self.iterations)
            if base == 0:
                raise ValueError("cannot set the learning rate: the schedule is 0 at this step")
            self.lr_multiplier = value / base

    lr = learning_rate

    def build(self, store):
        """Allocate the state buffers for every parameter group of ``store``."""
        self.ops = store.ops
        self.state = {}
        for dtype, (params, _) in store.groups.items():
            buffers = {}
            for name, initial in self.state_spec():
                buffer = store.ops.zeros(params.shape, dtype)
                if initial:
                    buffer += initial
                buffers[name] = buffer
            self.state[dtype] = buffers

    def state_spec(self):
        return self.STATE

    def apply(self, store):
        """One step over all of ``store``'s parameters; returns the learning rate used."""
        lr = self.learning_rate
        self.clip(store)
        for dtype, (params, grads) in store.groups.items():
            self.update(store.ops, params, grads, self.state[dtype], lr, self.iterations)
        self.iterations += 1
        return lr

    def apply_fused(self, update):
        """One step whose update a compiled training step makes itself, fused with the backward
        pass (:mod:`tensornet.compiled_step`): ``update(lr)`` with :meth:`apply`'s learning rate,
        then t += 1; returns what ``update`` returns. Not for an optimizer that clips: clipping
        needs every gradient before the first weight changes."""
        if self.clips:
            raise RuntimeError(f"{type(self).__name__} clips gradients: its step cannot be fused with the backward pass")
        result = update(self.learning_rate)
        self.iterations += 1
        return result

    @property
    def clips(self) -> bool:
        """Whether any of clipnorm, global_clipnorm and clipvalue is set."""
        return self.clipnorm is not None or self.global_clipnorm is not None or self.clipvalue is not None

    def clip(self, store):
        """Keras' clipping: ``clipnorm`` per weight tensor, ``global_clipnorm`` over all of them,
        ``clipvalue`` element-wise: g <- g * min(1, c / ||g||) and g <- clip(g, -c, c)."""
        ops = store.ops
        if self.clipnorm is not None:
            for _, _, _, grad in store.views():
                norm = ops.to_float(ops.global_norm(grad.reshape(-1)))
                if norm > self.clipnorm:
                    ops.scale_(grad, self.clipnorm / norm)
        if self.global_clipnorm is not None:
            norm = math.sqrt(sum(ops.to_float(ops.global_norm(g)) ** 2 for _, g in store.groups.values()))
            if norm > self.global_clipnorm:
                for _, grads in store.groups.values():
                    ops.scale_(grads, self.global_clipnorm / norm)
        if self.clipvalue is not None:
            for _, grads in store.groups.values():
                ops.clip_(grads, -self.clipvalue, self.clipvalue)

    def update(self, ops, params, grads, state, lr, t):
        raise NotImplementedError

    # ------------------------------------------------------------ state for save / resume
    def get_state(self, ops) -> dict:
        """Step count, scalar state and every state buffer as host arrays."""
        buffers = {f"{dtype}/{name}": ops.to_numpy(buf) for dtype, group in self.state.items()
                   for name, buf in group.items()}
        return {"iterations": self.iterations, "buffers": buffers, "scalars": self.scalar_state(),
                "lr_multiplier": self.lr_multiplier}

    def set_state(self, ops, state: dict):
        self.iterations = int(state["iterations"])
        for key, value in state["buffers"].items():
            dtype, name = key.split("/")
            target = self.state[dtype][name]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"optimizer state {key!r} has shape {value.shape}, expected {target.shape}")
            target[...] = ops.asarray(value)
        self.set_scalar_state(state.get("scalars", {}))
        self.lr_multiplier = float(state.get("lr_multiplier", 1.0))

    def scalar_state(self) -> dict:
        return {}

    def set_scalar_state(self, scalars: dict):
        pass

    def get_config(self) -> dict:
        return {"name": self.name, "schedule": self.schedule.get_config(), "clipnorm": self.clipnorm,
                "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}


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
        super().__init__(_learning_rate(lr, learning_rate, 0.01, decay), **kwargs)
        self.momentum = _number(momentum, "momentum")
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False; got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0; got momentum=0")
        self.nesterov = nesterov
        self.weight_decay = _number(weight_decay, "weight_decay")

    def state_spec(self):
        return (("velocity", 0.0),) if self.momentum else ()

    def update(self, ops, params, grads, state, lr, t):
        ops.sgd_update(params, grads, state.get("velocity"), lr, self.momentum, self.nesterov,
                       self.weight_decay)

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
        super().__init__(_learning_rate(lr, learning_rate, 0.001, decay), **kwargs)
        self.rho = _number(rho, "rho", maximum=1.0)
        self.momentum = _number(momentum, "momentum")
        self.epsilon = _number(epsilon, "epsilon")
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
        super().__init__(_learning_rate(lr, learning_rate, 0.001, decay), **kwargs)
        self.initial_accumulator_value = _number(initial_accumulator_value, "initial_accumulator_value")
        self.epsilon = _number(epsilon, "epsilon")

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
        super().__init__(_learning_rate(lr, learning_rate, 0.001, decay), **kwargs)
        self.rho = _number(rho, "rho", maximum=1.0)
        self.epsilon = _number(epsilon, "epsilon")

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
        super().__init__(_learning_rate(lr, learning_rate, 0.001, decay), **kwargs)
        self.beta_1 = _number(beta_1, "beta_1", maximum=1.0, strict_max=True)
        self.beta_2 = _number(beta_2, "beta_2", maximum=1.0, strict_max=True)
        self.epsilon = _number(epsilon, "epsilon")
        self.amsgrad = bool(amsgrad)

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
        super().__init__(_learning_rate(lr, learning_rate, 0.001, decay), **kwargs)
        self.beta_1 = _number(beta_1, "beta_1", maximum=1.0, strict_max=True)
        self.beta_2 = _number(beta_2, "beta_2", maximum=1.0, strict_max=True)
        self.epsilon = _number(epsilon, "epsilon")

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
        super().__init__(_learning_rate(lr, learning_rate, 0.001, decay), **kwargs)
        self.beta_1 = _number(beta_1, "beta_1", maximum=1.0, strict_max=True)
        self.beta_2 = _number(beta_2, "beta_2", maximum=1.0, strict_max=True)
        self.epsilon = _number(epsilon, "epsilon")
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

