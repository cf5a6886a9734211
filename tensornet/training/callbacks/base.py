"""The callback protocol: :class:`Callback`, the list ``fit`` calls, batch logs read lazily from
the device, and :class:`History`."""
from __future__ import annotations

import math
from collections.abc import MutableMapping


class Callback:
    """Base class; ``self.model`` and ``self.params`` are set before training starts, and inside
    ``fit`` ``self.run`` is the training run, whose :meth:`checkpoint_position` says where the
    epoch stands for a checkpoint."""

    #: Whether ``fit`` logs ``learning_rate`` at each epoch's end when this callback is present.
    logs_learning_rate = False

    def __init__(self):
        self.model = None
        self.params = {}
        self.run = None

    def set_model(self, model):
        self.model = model

    def set_run(self, run):
        self.run = run

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

    def on_train_interrupt(self, epoch, batch):
        """SIGINT arrived; the step ``batch`` of ``epoch`` is finished. Return the path of a
        checkpoint written now, if any. (A callback that overrides this makes ``fit`` catch
        SIGINT and stop at the end of the current step.)"""
        return None

    # Keras 2 aliases for the training-batch hooks.
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass


class BatchLogs(MutableMapping):
    """Logs of one training batch: ``batch``, ``size``, and, read lazily, ``loss`` and each
    metric as running means over the epoch so far (one device read per BatchLogs, on the
    first access to any of them)."""

    def __init__(self, batch, size, totals=None, output_size=None):
        self._plain = {"batch": batch, "size": size}
        self._totals, self._output_size = totals, output_size
        self._results = None
        names = ["loss"] + [m.name for m in totals.metrics] if totals is not None else []
        self._lazy_names = [n for n in names if n not in self._plain]

    def _read(self):
        if self._results is None:
            self._results = self._totals.results(self._output_size) if self._totals is not None else {}
        return self._results

    def __getitem__(self, key):
        if key in self._plain:
            return self._plain[key]
        if key in self._lazy_names:
            return self._read()[key]
        raise KeyError(key)

    def __contains__(self, key):
        return key in self._plain or key in self._lazy_names

    def __setitem__(self, key, value):
        self._plain[key] = value
        if key in self._lazy_names:
            self._lazy_names.remove(key)

    def __delitem__(self, key):
        if key in self._lazy_names:
            self._lazy_names.remove(key)
        else:
            del self._plain[key]

    def __iter__(self):
        yield from self._plain
        yield from self._lazy_names

    def __len__(self):
        return len(self._plain) + len(self._lazy_names)

    def __repr__(self):
        return f"BatchLogs({dict(self)!r})"


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


def _overrides(callback, hook):
    attr = getattr(callback, hook)
    return getattr(attr, "__func__", attr) is not getattr(Callback, hook)


class CallbackList:
    """Calls a hook on every callback in order; ``wants_batch_hooks`` is False when none
    overrides a batch hook (or a callback's own ``wants_batch_hooks`` says it needs none), so
    the trainer can skip them.

    Before ``on_epoch_end`` it records ``model.epochs_completed = epoch + 1`` (what a saved model
    resumes from) and, when a learning-rate callback is present, ``logs["learning_rate"]``.
    """

    _BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")

    def __init__(self, callbacks, model, params, run=None):
        self.callbacks = list(callbacks)
        self.model = model
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback instances; got {type(callback).__name__}")
            callback.set_model(model)
            callback.set_params(params)
            callback.set_run(run)
        self.wants_batch_hooks = any(self._wants_batches(cb) for cb in self.callbacks)
        self.wants_interrupts = any(_overrides(cb, "on_train_interrupt") for cb in self.callbacks)
        self._log_lr = any(cb.logs_learning_rate for cb in self.callbacks)

    @classmethod
    def _wants_batches(cls, callback):
        declared = getattr(callback, "wants_batch_hooks", None)
        if declared is not None:
            return bool(declared)
        return any(_overrides(callback, hook) for hook in cls._BATCH_HOOKS)

    def call(self, hook, *args):
        if hook == "on_epoch_end" and self.model is not None:
            epoch, logs = args
            self.model.epochs_completed = epoch + 1
            optimizer = getattr(self.model, "optimizer", None)
            if self._log_lr and optimizer is not None and logs is not None:
                logs["learning_rate"] = float(optimizer.learning_rate)
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def call_interrupt(self, epoch, batch) -> list:
        """``on_train_interrupt`` on every callback; what each returned."""
        return [callback.on_train_interrupt(epoch, batch) for callback in self.callbacks]

    def batch_begin(self, batch, logs):
        for callback in self.callbacks:
            callback.on_train_batch_begin(batch, logs)
            callback.on_batch_begin(batch, logs)

    def batch_end(self, batch, logs):
        for callback in self.callbacks:
            callback.on_train_batch_end(batch, logs)
            callback.on_batch_end(batch, logs)
