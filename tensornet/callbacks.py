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
:class:`tensornet.progress.ProgressLogger`.
"""
from __future__ import annotations

import csv
import inspect
import math
import os
import sys
import warnings
from collections.abc import MutableMapping


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

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        self.model = model
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback instances; got {type(callback).__name__}")
            callback.set_model(model)
            callback.set_params(params)
        self.wants_batch_hooks = any(self._wants_batches(cb) for cb in self.callbacks)
        self.wants_interrupts = any(_overrides(cb, "on_train_interrupt") for cb in self.callbacks)
        self._log_lr = any(isinstance(cb, (LearningRateScheduler, ReduceLROnPlateau)) for cb in self.callbacks)

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


# ---------------------------------------------------------------------- monitoring helpers
def _mode(monitor, mode, owner):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner} mode must be 'auto', 'min' or 'max'; got {mode!r}")
    if mode == "auto":
        name = monitor[4:] if monitor.startswith("val_") else monitor
        mode = "max" if (name.endswith("acc") or "accuracy" in name or name.endswith("auc")) else "min"
    return mode


def _print(message):
    print(message, file=sys.stdout, flush=True)


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (Keras' semantics).

    An epoch improves on the best value when ``current < best - min_delta`` (mode ``min``) or
    ``current > best + min_delta`` (mode ``max``; ``auto`` picks ``max`` for accuracies).
    After ``patience`` epochs without improvement training stops; with
    ``restore_best_weights`` the weights of the best epoch are put back when it stops.
    ``baseline``: training also stops unless the monitor beats it within ``patience`` epochs.
    Epochs before ``start_from_epoch`` are not monitored.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0; got {patience!r}")
        self.patience = patience
        self.verbose = verbose
        self.mode = _mode(monitor, mode, "EarlyStopping")
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best = None
        self.best_weights = None

    def _improves(self, value, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best = None
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping monitors {self.monitor!r}, which is not in the logs "
                          f"(available: {', '.join(sorted(logs or {}))})", RuntimeWarning, stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose:
                    _print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) after every epoch, or only when ``monitor`` improves
    (``save_best_only``); ``filepath`` may hold ``{epoch:02d}`` and log keys such as
    ``{val_loss:.4f}``. ``save_weights_only`` writes only the weights (``model.save_weights``).
    Each file is written atomically, so an interrupted run leaves the last complete one.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint supports save_freq='epoch' only; got {save_freq!r}")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _mode(monitor, mode, "ModelCheckpoint")
        self.best = initial_value_threshold

    def _improves(self, value):
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint monitors {self.monitor!r}, which is not in the logs; "
                              "skipping", RuntimeWarning, stacklevel=2)
                return
            if not self._improves(current):
                if self.verbose:
                    _print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                previous = "inf" if self.best is None else f"{self.best:.5f}"
                _print(f"Epoch {epoch + 1}: {self.monitor} improved from {previous} to {current:.5f}, "
                       f"saving model to {path}")
            self.best = current
        elif self.verbose:
            _print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class Checkpoints(Callback):
    """Checkpoints that survive a crash: every ``every_epochs`` epochs and/or every
    ``every_steps`` optimizer steps, into ``directory``, keeping the newest ``keep``; also at the
    start of training when the directory holds none, and on SIGINT at the end of the current
    step (then ``fit`` raises :class:`~tensornet.errors.TrainingInterrupted`).

    Each checkpoint is written atomically and only after a divergence check passed, so the
    directory always holds complete, finite checkpoints; one taken inside an epoch resumes
    there. Restore with ``tensornet.checkpoints.CheckpointDirectory(directory).restore()`` and
    continue with ``fit(..., initial_epoch=model.epochs_completed)`` (see
    :mod:`tensornet.checkpoints`). Callback state (EarlyStopping's patience, ...) is not kept.
    """

    def __init__(self, directory, every_epochs=1, every_steps=None, keep=3, verbose=0):
        super().__init__()
        from .checkpoints import CheckpointDirectory

        for value, name in ((every_epochs, "every_epochs"), (every_steps, "every_steps")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an int >= 1 or None; got {value!r}")
        self.directory = CheckpointDirectory(directory, keep=keep)
        self.every_epochs, self.every_steps = every_epochs, every_steps
        self.verbose = verbose
        #: Paths written by this callback, oldest first.
        self.written = []

    @property
    def wants_batch_hooks(self):
        return self.every_steps is not None

    def _save(self, inside_epoch, why):
        trainer = self.model._trainer
        if trainer.guard is not None and trainer.position is not None:
            trainer.guard.verify()
        point = trainer.resume_point() if inside_epoch else None
        path = self.directory.save(self.model, point)
        self.written.append(path)
        if self.verbose:
            _print(f"{why}: checkpoint written to {path}")
        return path

    def on_train_begin(self, logs=None):
        if self.directory.newest(verify=False) is None:  # (a resumed mid-epoch start keeps its position)
            self._save(True, "Training start")

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps is not None and self.model.optimizer.iterations % self.every_steps == 0:
            self._save(True, f"Step {self.model.optimizer.iterations}")

    def on_epoch_end(self, epoch, logs=None):
        if self.every_epochs is not None and (epoch + 1) % self.every_epochs == 0:
            self._save(False, f"Epoch {epoch + 1}")

    def on_train_interrupt(self, epoch, batch):
        return self._save(True, f"Interrupted at epoch {epoch + 1}, batch {batch + 1}")


class LearningRateScheduler(Callback):
    """At the start of each epoch set the optimizer's learning rate to ``schedule(epoch, lr)``
    (or ``schedule(epoch)`` for a one-argument function), ``epoch`` counting from 0 and ``lr``
    the current rate. The rate is logged as ``learning_rate``."""

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


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` then the log keys in sorted order.

    ``append=True`` continues an existing file (no second header), as after a resume.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self.keys = None
        self._file = self._writer = None

    def on_train_begin(self, logs=None):
        existing = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.keys = None
        if existing:
            with open(self.filename, newline="") as handle:
                header = next(csv.reader(handle, delimiter=self.separator), None)
            self.keys = header[1:] if header else None
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self._header_written = existing

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.keys is None:
            self.keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys], delimiter=self.separator,
                                          extrasaction="ignore")
            if not self._header_written:
                self._writer.writeheader()
                self._header_written = True
        row = {"epoch": epoch, **{key: logs.get(key, "NA") for key in self.keys}}
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss is NaN or infinite.

    Checks the running loss after every batch, as Keras does (one device read per batch: the
    price of stopping at the batch that diverged), and once more at the end of each epoch.
    With it in the callbacks ``fit`` behaves as Keras' does: it returns quietly and the weights
    stay as they are, instead of raising :class:`~tensornet.errors.DivergenceError` with the
    last finite weights restored (the default without it).
    """

    def _check(self, where, logs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            _print(f"{where}: Invalid loss, terminating training")
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check(f"Batch {batch}", logs)

    def on_epoch_end(self, epoch, logs=None):
        if not self.model.stop_training:
            self._check(f"Epoch {epoch + 1}", logs)


class LambdaCallback(Callback):
    """A callback from plain functions: ``on_epoch_begin/end(epoch, logs)``,
    ``on_train_batch_begin/end(batch, logs)`` (also ``on_batch_begin/end``),
    ``on_train_begin/end(logs)``.

    >>> LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))
    """

    _HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end", "on_train_batch_begin",
              "on_train_batch_end", "on_batch_begin", "on_batch_end")

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_begin=None, on_batch_end=None,
                 on_train_begin=None, on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_batch_begin=on_batch_begin,
                     on_batch_end=on_batch_end, on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin, on_train_batch_end=on_train_batch_end)
        for name, fn in kwargs.items():
            if not hasattr(Callback, name):
                raise TypeError(f"LambdaCallback got an unknown hook {name!r}")
            given[name] = fn
        for name, fn in given.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback {name} must be callable; got {fn!r}")
            setattr(self, name, fn)


__all__ = ["BatchLogs", "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
           "LearningRateScheduler", "ModelCheckpoint", "ReduceLROnPlateau", "TerminateOnNaN"]
