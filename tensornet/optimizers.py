"""Optimizers by Keras name (``optimizer='adam'``): the Keras import path ``tensornet.optimizers``,
re-exported from :mod:`tensornet.optim.optimizers`."""
from .optim.optimizer import Optimizer
from .optim.optimizers import (SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, Nadam, NAMES, get)

__all__ = ['Optimizer', 'SGD', 'RMSprop', 'Adagrad', 'Adadelta', 'Adam', 'Adamax', 'Nadam',
           'NAMES', 'get']
