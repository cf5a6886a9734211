"""Callbacks: objects the trainer calls at Keras' hooks.

Hooks: ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
``on_train_batch_begin/end(batch, logs)`` (also ``on_batch_begin/end``), ``on_test_begin/end``,
``on_predict_begin/end``. Epoch ``logs`` map ``loss``, each metric, and their ``val_`` forms to
floats (plus ``learning_rate`` when a learning-rate callback is in the list, as Keras 3 logs it).

Batch-end logs are a :class:`BatchLogs`: ``batch`` and ``size`` are plain, while ``loss`` and the
metrics (running means over the epoch so far, as Keras reports them) are read from the device
only when a callback asks for one, so callbacks that do not look cost no synchronisation.

Callbacks here, with Keras' names and defaults: :class:`History`, :class:`EarlyStopping`,
:class:`ModelCheckpoint`, :class:`Checkpoints` (fault tolerance), :class:`LearningRateScheduler`, :class:`ReduceLROnPlateau`,
:class:`CSVLogger`, :class:`TerminateOnNaN`, :class:`LambdaCallback`; the progress bar is
:class:`tensornet.training.progress.ProgressLogger`.
"""
from .base import BatchLogs, Callback, CallbackList, History
from .checkpointing import Checkpoints, ModelCheckpoint
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .monitoring import CSVLogger, EarlyStopping, LambdaCallback, TerminateOnNaN

__all__ = ['Callback', 'BatchLogs', 'History', 'CallbackList', 'EarlyStopping', 'ModelCheckpoint', 'Checkpoints', 'LearningRateScheduler', 'ReduceLROnPlateau', 'CSVLogger', 'TerminateOnNaN', 'LambdaCallback']
