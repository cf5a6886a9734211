"""Callbacks that set the learning rate: LearningRateScheduler and ReduceLROnPlateau."""
from __future__ import annotations

import inspect
import math
import sys
import warnings

from .base import Callback
from .monitoring import _mode, _print


class LearningRateScheduler(Callback):
    """At the start of each epoch set the optimizer's learning rate to ``schedule(epoch, lr)``
    (or ``schedule(epoch)`` for a one-argument function), ``epoch`` counting from 0 and ``lr``
    the current rate. The rate is logged as ``learning_rate``."""

    logs_learning_rate = True

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler needs a callable; got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        try:
            parameters = inspect.signature(schedule).parameters.values()
            positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            self._two_args = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)
        except (TypeError, ValueError):
            self._two_args = True

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        current = float(optimizer.learning_rate)
        lr = self.schedule(epoch, current) if self._two_args else self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"the schedule returned {lr!r} for epoch {epoch}; expected a finite number >= 0")
        optimizer.learning_rate = float(lr)
        if self.verbose:
            _print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` (floor ``min_lr``) when ``monitor`` has not
    improved by more than ``min_delta`` for ``patience`` epochs; then wait ``cooldown`` epochs
    before counting again (Keras' semantics; ``factor`` < 1). On a decaying schedule the whole
    schedule is scaled (see ``Optimizer.learning_rate``)."""

    logs_learning_rate = True

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if not 0.0 <= factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0 (or < 0); got {factor!r}")
        self.monitor, self.factor, self.patience = monitor, float(factor), patience
        self.verbose, self.min_delta, self.cooldown = verbose, float(min_delta), cooldown
        self.min_lr = float(min_lr)
        self.mode = _mode(monitor, mode, "ReduceLROnPlateau")
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def _improves(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau monitors {self.monitor!r}, which is not in the logs", RuntimeWarning,
                          stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                optimizer = self.model.optimizer
                old_lr = float(optimizer.learning_rate)
                if old_lr > self.min_lr:
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose:
                        _print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
