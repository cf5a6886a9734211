"""Layers: Dense, Activation, Flatten, Dropout, BatchNormalization (Keras names and arguments)."""
from .activation import Activation
from .base import Layer
from .batch_normalization import BatchNormalization
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten

__all__ = ["Activation", "BatchNormalization", "Dense", "Dropout", "Flatten", "Layer"]
