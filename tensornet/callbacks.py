"""Callbacks that ``fit`` calls at the start and end of training, epochs and batches: the Keras
import path ``tensornet.callbacks``, re-exported from :mod:`tensornet.training.callbacks`."""
from .training.callbacks import (Callback, BatchLogs, History, CallbackList, EarlyStopping, ModelCheckpoint,
                                 Checkpoints, LearningRateScheduler, ReduceLROnPlateau, CSVLogger,
                                 TerminateOnNaN, LambdaCallback)

__all__ = ['Callback', 'BatchLogs', 'History', 'CallbackList', 'EarlyStopping', 'ModelCheckpoint',
           'Checkpoints', 'LearningRateScheduler', 'ReduceLROnPlateau', 'CSVLogger',
           'TerminateOnNaN', 'LambdaCallback']
