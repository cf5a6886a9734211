"""Layers: Dense, Activation, Flatten, Dropout, BatchNormalization, Conv2D, pooling and Reshape
(Keras names and arguments)."""
from .activation import Activation
from .base import Layer
from .batch_normalization import BatchNormalization
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .conv2d import Conv2D
from .global_pooling import GlobalAveragePooling2D, GlobalMaxPooling2D
from .pooling import AveragePooling2D, MaxPooling2D
from .reshape import Reshape

__all__ = ["Activation", "BatchNormalization", "Dense", "Dropout", "Flatten", "Layer",
           "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Reshape"]
