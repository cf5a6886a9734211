"""Checkpoints of a training run (the ``Checkpoints`` callback's files): the import path
``tensornet.checkpoints``, re-exported from :mod:`tensornet.models` and :mod:`tensornet.training.checkpoints`."""
from .models.checkpoints import CheckpointDirectory
from .models.loading import load_checkpoint
from .models.saving import save_checkpoint
from .training.checkpoints import ResumePoint

__all__ = ["CheckpointDirectory", "ResumePoint", "load_checkpoint", "save_checkpoint"]
