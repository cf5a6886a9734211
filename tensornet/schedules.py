"""Learning-rate schedules, functions of the optimizer step: the Keras import path
``tensornet.schedules``, re-exported from :mod:`tensornet.optim.schedules`."""
from .optim.schedules import (LearningRateSchedule, Constant, InverseTimeDecay, ExponentialDecay,
                              StepDecay, CosineDecay, LambdaSchedule, get, from_config)

__all__ = ['LearningRateSchedule', 'Constant', 'InverseTimeDecay', 'ExponentialDecay', 'StepDecay',
           'CosineDecay', 'LambdaSchedule', 'get', 'from_config']
