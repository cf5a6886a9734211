"""Models: :class:`Sequential`, and loading saved models and checkpoints (Keras' ``tensornet.models``)."""
from .checkpoints import CheckpointDirectory
from .loading import load_checkpoint, load_model
from .sequential import Sequential

__all__ = ["CheckpointDirectory", "Sequential", "load_checkpoint", "load_model"]
