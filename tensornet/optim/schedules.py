"""Learning-rate schedules: the learning rate as a function of the step count t.

t is the number of updates already applied (0 for the first update).

- ``Constant(lr)``                                     lr
- ``InverseTimeDecay(lr, decay_steps, decay_rate)``    lr / (1 + decay_rate * t / decay_steps)
  (``SGD(decay=d)`` is ``InverseTimeDecay(lr, 1, d)``: lr / (1 + d t))
- ``ExponentialDecay(lr, decay_steps, decay_rate)``    lr * decay_rate ^ (t / decay_steps)
- ``StepDecay(lr, step_size, gamma)``                  lr * gamma ^ floor(t / step_size)
- ``CosineDecay(lr, decay_steps, alpha)``              lr * ((1 - alpha) (1 + cos(pi min(t, T) / T)) / 2 + alpha)
- ``LambdaSchedule(fn)``                               fn(t), any callable of the step
``staircase=True`` floors t / decay_steps in the inverse-time and exponential forms.
"""
from __future__ import annotations

import math


def _check_number(value, argument, minimum=0.0, strict=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{argument} must be a finite number; got {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{argument} must be {relation} {minimum}; got {value!r}")
    return float(value)


class LearningRateSchedule:
    """A callable ``schedule(step) -> learning rate``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": type(self).__name__, **{k: v for k, v in vars(self).items()}}


class Constant(LearningRateSchedule):
    """lr at every step."""

    def __init__(self, learning_rate):
        self.learning_rate = _check_number(learning_rate, "learning_rate")

    def __call__(self, step):
        return self.learning_rate


class InverseTimeDecay(LearningRateSchedule):
    """lr / (1 + decay_rate * t / decay_steps)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _check_number(decay_steps, "decay_steps", strict=True)
        self.decay_rate = _check_number(decay_rate, "decay_rate")
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)


class ExponentialDecay(LearningRateSchedule):
    """lr * decay_rate ^ (t / decay_steps)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _check_number(decay_steps, "decay_steps", strict=True)
        self.decay_rate = _check_number(decay_rate, "decay_rate", strict=True)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p


class StepDecay(LearningRateSchedule):
    """lr * gamma ^ floor(t / step_size)."""

    def __init__(self, initial_learning_rate, step_size, gamma=0.1):
        self.initial_learning_rate = _check_number(initial_learning_rate, "initial_learning_rate")
        self.step_size = int(_check_number(step_size, "step_size", strict=True))
        self.gamma = _check_number(gamma, "gamma")

    def __call__(self, step):
        return self.initial_learning_rate * self.gamma ** (step // self.step_size)


class CosineDecay(LearningRateSchedule):
    """lr * ((1 - alpha) * (1 + cos(pi * min(t, T) / T)) / 2 + alpha), T = decay_steps."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0):
        self.initial_learning_rate = _check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _check_number(decay_steps, "decay_steps", strict=True)
        self.alpha = _check_number(alpha, "alpha")

    def __call__(self, step):
        fraction = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)


class LambdaSchedule(LearningRateSchedule):
    """fn(t) for any callable ``fn`` of the step count."""

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"LambdaSchedule needs a callable of the step; got {fn!r}")
        self.fn = fn

    def __call__(self, step):
        return float(self.fn(step))

    def get_config(self):
        return {"name": "LambdaSchedule", "fn": getattr(self.fn, "__name__", repr(self.fn))}


def get(identifier, argument="learning_rate") -> LearningRateSchedule:
    """A schedule from a number (constant), a LearningRateSchedule, or a callable of the step."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, (int, float)) and not isinstance(identifier, bool):
        return Constant(_check_number(identifier, argument))
    if callable(identifier):
        return LambdaSchedule(identifier)
    raise TypeError(f"{argument} must be a number, a LearningRateSchedule or a callable of the "
                    f"step; got {identifier!r}")


_CLASSES = {cls.__name__: cls for cls in (Constant, InverseTimeDecay, ExponentialDecay, StepDecay,
                                          CosineDecay)}


def from_config(config: dict) -> LearningRateSchedule:
    params = {k: v for k, v in config.items() if k != "name"}
    if config["name"] not in _CLASSES:
        raise ValueError(f"cannot rebuild schedule {config['name']!r} (a callable is not serialisable)")
    return _CLASSES[config["name"]](**params)
