"""The optimizer base class: each optimizer applies one vectorised update to a model's whole flat
parameter buffer.

The base class fixes the order of a step once: learning rate from the schedule at step t
(t = updates already applied, 0 first), gradient clipping, the optimizer's update (a single
backend call over the flat buffers: one pass on the CPU, one kernel launch on a GPU), then
t += 1. State buffers (velocities, moments) have the parameter buffer's size and start at
the values each docstring states, so save/load continues the same trajectory.
"""
from __future__ import annotations

import math

from . import schedules


def check_number(value, argument, minimum=0.0, maximum=None, strict_min=False, strict_max=False):
    """``float(value)`` when it is a finite number within the bounds, else a ValueError naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{argument} must be a finite number; got {value!r}")
    if value < minimum or (strict_min and value == minimum):
        raise ValueError(f"{argument} must be {'>' if strict_min else '>='} {minimum}; got {value!r}")
    if maximum is not None and (value > maximum or (strict_max and value == maximum)):
        raise ValueError(f"{argument} must be {'<' if strict_max else '<='} {maximum}; got {value!r}")
    return float(value)


def learning_rate_schedule(lr, learning_rate, default, decay):
    """The schedule ``lr=`` / ``learning_rate=`` (the same argument) gives: a number becomes
    ``Constant(lr)``, or ``InverseTimeDecay(lr, 1, decay)`` (lr_t = lr / (1 + decay t)) with ``decay``."""
    if lr is not None and learning_rate is not None and lr != learning_rate:
        raise ValueError(f"lr and learning_rate name the same thing; got lr={lr!r} and "
                         f"learning_rate={learning_rate!r}")
    value = learning_rate if learning_rate is not None else lr if lr is not None else default
    decay = check_number(decay, "decay")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = check_number(value, "learning_rate")
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
        self.clipnorm = None if clipnorm is None else check_number(clipnorm, "clipnorm", strict_min=True)
        self.clipvalue = None if clipvalue is None else check_number(clipvalue, "clipvalue", strict_min=True)
        self.global_clipnorm = (None if global_clipnorm is None
                                else check_number(global_clipnorm, "global_clipnorm", strict_min=True))
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
        value = check_number(value, "learning_rate")
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
                buffer = store.ops.lasting_zeros(params.shape, dtype)
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

    def describe(self) -> dict:
        """The update rule as the plain description a backend's whole-step kernel reads:
        ``rule`` (the optimizer's name), ``class`` and ``clips``; subclasses add their
        hyper-parameters and state buffers."""
        return {"rule": self.name, "class": type(self).__name__, "clips": self.clips}

    def apply_fused(self, update):
        """One step whose update a backend's whole training step makes itself, fused with the
        backward pass (:meth:`tensornet.backend.Backend.training_step`): ``update(lr)`` with :meth:`apply`'s learning rate,
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
