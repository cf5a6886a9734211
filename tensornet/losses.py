"""Losses by Keras name (``loss='categorical_crossentropy'``): the Keras import path
``tensornet.losses``, re-exported from :mod:`tensornet.nn.losses`."""
from .nn.losses import (Loss, MeanSquaredError, MeanAbsoluteError, BinaryCrossentropy,
                        CategoricalCrossentropy, SparseCategoricalCrossentropy, NAMES, get,
                        from_config)
from .nn.losses import binary_crossentropy, categorical_crossentropy, mae, mean_absolute_error, mean_squared_error, mse, sparse_categorical_crossentropy

__all__ = ['Loss', 'MeanSquaredError', 'MeanAbsoluteError', 'BinaryCrossentropy',
           'CategoricalCrossentropy', 'SparseCategoricalCrossentropy', 'NAMES', 'get',
           'from_config', 'binary_crossentropy', 'categorical_crossentropy', 'mae',
           'mean_absolute_error', 'mean_squared_error', 'mse', 'sparse_categorical_crossentropy']
