"""A run's checkpoint directory, with the model restored from its newest complete checkpoint."""
from __future__ import annotations

from ..training.checkpoints import CheckpointFiles
from .loading import load_checkpoint


class CheckpointDirectory(CheckpointFiles):
    """The checkpoints of one run in ``directory`` (see
    :class:`~tensornet.training.checkpoints.CheckpointFiles`), and :meth:`restore`."""

    def restore(self, custom_objects=None):
        """The model from the newest complete checkpoint (see :func:`load_checkpoint`), ready to
        continue with ``fit(..., initial_epoch=model.epochs_completed)``."""
        path = self.newest()
        if path is None:
            raise FileNotFoundError(f"no complete checkpoint in {self.directory!r}")
        return load_checkpoint(path, custom_objects=custom_objects)
