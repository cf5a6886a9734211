"""Layers with Keras' names and arguments: the Keras import path ``tensornet.layers``, re-exported
from :mod:`tensornet.nn.layers`."""
from .nn.layers import (Activation, BatchNormalization, Dense, Dropout, Flatten, Layer)
from .nn.layers import (Add, Average, Concatenate, Dot, Input, InputLayer, Maximum, Merge, Minimum, Multiply,
                        Subtract)
from .nn.layers import (AveragePooling2D, Conv2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D,
                        Reshape)

__all__ = ['Activation', 'BatchNormalization', 'Dense', 'Dropout', 'Flatten', 'Layer',
           'Input', 'InputLayer', 'Add', 'Average', 'Concatenate', 'Dot', 'Maximum', 'Merge', 'Minimum',
           'Multiply', 'Subtract',
           'Conv2D', 'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Reshape']
