"""Divergence guard: stop at the first NaN or infinite loss or gradient, with the model as it
was after the last finite step, at no host synchronisation per step.

How it stays cheap: the epoch's loss sum already accumulates on the device, and a non-finite
loss makes it non-finite for the rest of the epoch; a non-finite gradient makes some weight
non-finite once applied (``w - lr * g`` with ``g`` NaN or infinite is NaN or infinite, and it
stays so). So the guard reads the device only at *checks*: every ``check_seconds`` of training
(as often as a progress bar refreshes), at every epoch end, and whenever a checkpoint is about
to be written. A check that passes takes a *snapshot* on the device (weights, optimizer state,
step count, layer statistics, random generators, and the epoch position).

When a check fails, the guard restores the snapshot and replays the steps since then with
:meth:`Trainer.checked_step`, which reads each step's loss and then its gradient before
applying the update. The first step whose loss or gradient is not finite is not applied, so the
model ends exactly as it was after the last finite step (replays are bit-identical: the same
batches, generator states and kernels), and :class:`~tensornet.errors.DivergenceError` names
that step's epoch, batch and optimizer step. Checkpoints are only written after a passing
check, so the last one on disk is never a diverged state.

An infinite gradient that ``clipvalue`` clamps leaves finite weights: that is clipping doing
its job, not divergence.
"""
from __future__ import annotations

import math
import time
import warnings

from .errors import DivergenceError

#: Seconds of training between two checks (progress bars refresh about as often).
CHECK_SECONDS = 1.0


class Snapshot:
    """Device copies of everything a training step changes, and the position they belong to."""

    def __init__(self):
        self.buffers = {}
        self.host = None

    def _copy(self, ops, key, source):
        target = self.buffers.get(key)
        if target is None or target.shape != source.shape or target.dtype != source.dtype:
            target = self.buffers[key] = ops.empty(source.shape, source.dtype)
        target[...] = source

    def take(self, trainer):
        model, ops = trainer.model, trainer.model.ops
        optimizer = model.optimizer
        for dtype, (params, _) in model.store.groups.items():
            self._copy(ops, ("params", dtype), params)
        for dtype, group in optimizer.state.items():
            for name, buffer in group.items():
                self._copy(ops, ("optimizer", dtype, name), buffer)
        self.host = {
            "iterations": optimizer.iterations, "lr_multiplier": optimizer.lr_multiplier,
            "scalars": dict(optimizer.scalar_state()),
            "layer_states": layer_states(model),
            "rngs": rng_states(model),
            "epoch": trainer.position.epoch, "batch": trainer.position.batch,
        }

    def restore(self, trainer):
        model = trainer.model
        optimizer = model.optimizer
        for dtype, (params, _) in model.store.groups.items():
            params[...] = self.buffers[("params", dtype)]
        for dtype, group in optimizer.state.items():
            for name, buffer in group.items():
                buffer[...] = self.buffers[("optimizer", dtype, name)]
        host = self.host
        optimizer.iterations, optimizer.lr_multiplier = host["iterations"], host["lr_multiplier"]
        optimizer.set_scalar_state(host["scalars"])
        set_layer_states(model, host["layer_states"])
        set_rng_states(model, host["rngs"])


def layer_states(model) -> dict:
    """Host copies of every layer's non-trainable state (e.g. BatchNormalization statistics)."""
    states = {index: layer.get_state_arrays() for index, layer in enumerate(model.layers)}
    return {index: state for index, state in states.items() if state}


def set_layer_states(model, states):
    for index, state in states.items():
        model.layers[index].set_state_arrays(state)


def rng_states(model) -> dict:
    """The state of the model's generator and of every layer's own generator."""
    states = {"model": model.rng.bit_generator.state if model.rng is not None else None}
    states.update({index: layer.rng.bit_generator.state for index, layer in enumerate(model.layers)
                   if layer.rng is not None and layer.rng is not model.rng})
    return states


def set_rng_states(model, states):
    for key, state in states.items():
        rng = model.rng if key == "model" else model.layers[key].rng
        if rng is not None and state is not None:
            rng.bit_generator.state = state


class FiniteGuard:
    """Checks a :class:`~tensornet.training.trainer.Trainer`'s run for non-finite losses and gradients
    (see the module docstring)."""

    def __init__(self, trainer, check_seconds=None):
        self.trainer = trainer
        #: ``None`` reads the module's :data:`CHECK_SECONDS` when the guard is made, so a
        #: setting changed after import applies to the next ``fit``.
        self.check_seconds = CHECK_SECONDS if check_seconds is None else check_seconds
        self.snapshot = Snapshot()
        self._last_check = time.perf_counter()
        #: Checks run and steps replayed (for tests and benchmarks).
        self.checks = self.replayed = 0

    def mark(self):
        """Take a snapshot of the state now, known to be finite (the start of an epoch, or
        after a passing check)."""
        self.snapshot.take(self.trainer)
        self._last_check = time.perf_counter()

    def after_step(self):
        """Called after every step: runs a check when ``check_seconds`` have passed."""
        if time.perf_counter() - self._last_check >= self.check_seconds:
            self.verify()

    def verify(self):
        """Read the device: if every loss since the last check and every weight is finite, take
        a new snapshot; otherwise locate the first bad step, restore the state before it and
        raise :class:`DivergenceError`."""
        self.checks += 1
        trainer = self.trainer
        ops = trainer.model.ops
        position = trainer.position
        finite = math.isfinite(ops.to_float(position.totals.loss)) and all(
            ops.all_finite(params) for params, _ in trainer.model.store.groups.values())
        if not finite:
            self._locate()
        self.mark()

    def _locate(self):
        """Replay from the snapshot to the first step whose loss or gradient is not finite."""
        trainer, snapshot = self.trainer, self.snapshot
        model = trainer.model
        position = trainer.position
        snapshot.restore(trainer)
        for batch in range(snapshot.host["batch"], position.batch):
            before = {"layer_states": layer_states(model), "rngs": rng_states(model)}
            step = model.optimizer.iterations
            self.replayed += 1
            bad = trainer.checked_step(*trainer.batch_at(batch))
            if bad is not None:
                set_layer_states(model, before["layer_states"])
                set_rng_states(model, before["rngs"])
                raise self._error(position.epoch, batch, step, bad)
        warnings.warn(f"a non-finite loss or weight was seen in epoch {position.epoch + 1}, but replaying "
                      f"batches {snapshot.host['batch'] + 1}-{position.batch} from the last check gave finite "
                      "values throughout (a non-deterministic fault?); training continues from the replayed state",
                      RuntimeWarning, stacklevel=3)

    @staticmethod
    def _error(epoch, batch, step, quantity):
        what = "the loss is NaN or infinite" if quantity == "loss" else "a gradient holds NaN or infinite values"
        return DivergenceError(
            f"training diverged at epoch {epoch + 1}, batch {batch + 1} (optimizer step {step + 1}): {what}. "
            f"That step was not applied: the weights, optimizer state and layer statistics are those after "
            f"optimizer step {step}, the last finite one. Lower the learning rate, clip gradients "
            "(clipnorm=...), or check the data for NaN.",
            epoch=epoch, batch=batch, step=step, quantity=quantity)
