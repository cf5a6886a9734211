"""Models: :class:`Model` (graphs of layer calls, the functional API), :class:`Sequential`, and loading saved models and checkpoints (Keras' ``tensornet.models``)."""
from .checkpoints import CheckpointDirectory
from .loading import load_checkpoint, load_model
from .model import Model
from .sequential import Sequential

__all__ = ["CheckpointDirectory", "Model", "Sequential", "load_checkpoint", "load_model"]
