"""Errors that end a training run: the Keras import path ``tensornet.errors``, re-exported from
:mod:`tensornet.training.errors`."""
from .training.errors import (DivergenceError, TrainingInterrupted, DeviceOutOfMemoryError)

__all__ = ['DivergenceError', 'TrainingInterrupted', 'DeviceOutOfMemoryError']
