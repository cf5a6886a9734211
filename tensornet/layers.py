"""Layers with Keras' names and arguments: the Keras import path ``tensornet.layers``, re-exported
from :mod:`tensornet.nn.layers`."""
from .nn.layers import (Activation, BatchNormalization, Dense, Dropout, Flatten, Layer)

__all__ = ['Activation', 'BatchNormalization', 'Dense', 'Dropout', 'Flatten', 'Layer']
