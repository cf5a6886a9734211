"""Layers: Dense, Activation, Flatten, Dropout (Keras names and arguments)."""
from .activation import Activation
from .base import Layer
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten

__all__ = ["Activation", "Dense", "Dropout", "Flatten", "Layer"]
