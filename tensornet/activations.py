"""Activation functions by Keras name (``activation='relu'``): the Keras import path
``tensornet.activations``, re-exported from :mod:`tensornet.nn.activations`."""
from .nn.activations import (ActivationFunction, LeakyReLU, NAMES, get, from_config)
from .nn.activations import leaky_relu, linear, relu, sigmoid, softmax, step, tanh

__all__ = ['ActivationFunction', 'LeakyReLU', 'NAMES', 'get', 'from_config', 'leaky_relu',
           'linear', 'relu', 'sigmoid', 'softmax', 'step', 'tanh']
