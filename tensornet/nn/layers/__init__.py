"""Layers: Dense, Activation, Flatten, Dropout, BatchNormalization, Input, the merge layers,
Conv2D, pooling and Reshape
(Keras names and arguments)."""
from .activation import Activation
from .base import Layer
from .batch_normalization import BatchNormalization
from .conv2d import Conv2D
from .dense import Dense
from .dropout import Dropout
from .flatten import Flatten
from .global_pooling import GlobalAveragePooling2D, GlobalMaxPooling2D
from .input_layer import Input, InputLayer
from .merge import Add, Average, Concatenate, Dot, Maximum, Merge, Minimum, Multiply, Subtract
from .pooling import AveragePooling2D, MaxPooling2D
from .reshape import Reshape

__all__ = ["Activation", "BatchNormalization", "Dense", "Dropout", "Flatten", "Layer",
           "Input", "InputLayer", "Add", "Average", "Concatenate", "Dot", "Maximum", "Merge", "Minimum",
           "Multiply", "Subtract",
           "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Reshape"]
