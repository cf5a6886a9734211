"""Callbacks: objects the trainer calls at Keras' hooks, and History.

Hooks: ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
``on_train_batch_begin/end(batch, logs)`` (also ``on_batch_begin/end``), ``on_test_begin/end``,
``on_predict_begin/end``. Epoch ``logs`` map ``loss``, each metric, and their ``val_`` forms to
floats. Batch logs carry ``batch`` and ``size`` only: reading the loss every batch would force a
device synchronisation per step.
"""
from __future__ import annotations


class Callback:
    """Base class; ``self.model`` is set before training starts."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass

    # Keras 2 aliases for the training-batch hooks.
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass


class History(Callback):
    """Records epoch logs: ``history.history["loss"]`` is the per-epoch list, ``history.epoch`` the
    epoch numbers."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class CallbackList:
    """Calls a hook on every callback in order; ``wants_batch_hooks`` is False when none
    overrides a batch hook, so the trainer can skip them."""

    _BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback instances; got {type(callback).__name__}")
            callback.set_model(model)
            callback.set_params(params)
        self.wants_batch_hooks = any(
            getattr(type(cb), hook) is not getattr(Callback, hook)
            for cb in self.callbacks for hook in self._BATCH_HOOKS)

    def call(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def batch_begin(self, batch, logs):
        for callback in self.callbacks:
            callback.on_train_batch_begin(batch, logs)
            callback.on_batch_begin(batch, logs)

    def batch_end(self, batch, logs):
        for callback in self.callbacks:
            callback.on_train_batch_end(batch, logs)
            callback.on_batch_end(batch, logs)
