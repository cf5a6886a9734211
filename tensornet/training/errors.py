"""Errors that end a training run, each carrying where it happened and what was kept.

- :class:`DivergenceError`: a loss or gradient became NaN or infinite; the model was put back
  to its state after the last finite step.
- :class:`TrainingInterrupted`: SIGINT (Ctrl-C) arrived; the current step was finished and
  the checkpoint callbacks wrote their checkpoints.
- :class:`DeviceOutOfMemoryError`: the device (or host) ran out of memory in ``fit``,
  ``evaluate`` or ``predict``; the memory pool was released and a batch size is suggested.
"""
from __future__ import annotations


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient.

    ``epoch`` (0-based) and ``batch`` (0-based, within the epoch) locate the step whose loss or
    gradient was not finite, ``step`` is its optimizer step (updates applied before it), and
    ``quantity`` is ``"loss"`` or ``"gradient"``. When the error is raised the model holds the
    weights, optimizer state and layer statistics it had after step ``step - 1``, the last
    finite one; that step was not applied.
    """

    def __init__(self, message, epoch=None, batch=None, step=None, quantity=None):
        super().__init__(message)
        self.epoch, self.batch, self.step, self.quantity = epoch, batch, step, quantity


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT stopped ``fit`` at the end of a step; ``checkpoints`` lists what was written then.

    ``epoch`` and ``batch`` (0-based) name the last step trained, ``step`` the optimizer steps
    applied so far.
    """

    def __init__(self, message, epoch=None, batch=None, step=None, checkpoints=()):
        super().__init__(message)
        self.epoch, self.batch, self.step = epoch, batch, step
        self.checkpoints = list(checkpoints)

    def __str__(self):
        return str(self.args[0]) if self.args else "training interrupted"


class DeviceOutOfMemoryError(MemoryError):
    """``fit``, ``evaluate`` or ``predict`` ran out of memory at ``batch_size``.

    ``parameter_bytes`` is what the weights, their gradients and the optimizer state take,
    ``activation_bytes`` what one batch's activations and their gradients take, and
    ``suggested_batch_size`` the largest power of two whose activations fit the memory that is
    free after the pool was released (``None`` when nothing smaller would help).
    """

    def __init__(self, message, batch_size=None, parameter_bytes=None, activation_bytes=None,
                 suggested_batch_size=None):
        super().__init__(message)
        self.batch_size = batch_size
        self.parameter_bytes, self.activation_bytes = parameter_bytes, activation_bytes
        self.suggested_batch_size = suggested_batch_size
