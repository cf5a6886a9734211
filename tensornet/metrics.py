"""Metrics by Keras name (``metrics=['accuracy']``): the Keras import path ``tensornet.metrics``,
re-exported from :mod:`tensornet.nn.metrics`."""
from .nn.metrics import (Metric, Accuracy, LossMetric, accuracy_kind, get)

__all__ = ['Metric', 'Accuracy', 'LossMetric', 'accuracy_kind', 'get']
