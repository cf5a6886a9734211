"""Callbacks that write the model during training: ModelCheckpoint and Checkpoints."""
from __future__ import annotations

import math
import os
import warnings

from ...distributed import is_root
from ..checkpoints import CheckpointFiles
from .base import Callback
from .monitoring import _mode, _print


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
        if not is_root():
            return
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
        for value, name in ((every_epochs, "every_epochs"), (every_steps, "every_steps")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an int >= 1 or None; got {value!r}")
        self.directory = CheckpointFiles(directory, keep=keep)
        self.every_epochs, self.every_steps = every_epochs, every_steps
        self.verbose = verbose
        #: Paths written by this callback, oldest first.
        self.written = []

    @property
    def wants_batch_hooks(self):
        return self.every_steps is not None

    def _save(self, inside_epoch, why):
        point = self.run.checkpoint_position(inside_epoch)  # (on every rank: it may sum over them)
        shards = self.run.checkpoint_shards(inside_epoch)  # (on every rank: gathered to rank 0)
        if not is_root():
            return None
        path = self.directory.save(self.model, point, shards)
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
