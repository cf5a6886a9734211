"""Callbacks that watch the logs: EarlyStopping, CSVLogger, TerminateOnNaN, LambdaCallback."""
from __future__ import annotations

import csv
import inspect
import math
import os
import sys
import warnings

from .base import Callback


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
