"""Layers: Dense, Activation, Flatten, Dropout, BatchNormalization, Input and the merge layers
(Keras names and arguments)."""
from .activation import Activation
from .base import Layer
from .batch_normalization import BatchNormalization
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .input_layer import Input, InputLayer
from .merge import Add, Average, Concatenate, Dot, Maximum, Merge, Minimum, Multiply, Subtract

__all__ = ["Activation", "BatchNormalization", "Dense", "Dropout", "Flatten", "Layer",
           "Input", "InputLayer", "Add", "Average", "Concatenate", "Dot", "Maximum", "Merge", "Minimum",
           "Multiply", "Subtract"]
