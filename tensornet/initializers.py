"""Weight initializers by Keras name (``kernel_initializer='he_normal'``): the Keras import path
``tensornet.initializers``, re-exported from :mod:`tensornet.nn.initializers`."""
from .nn.initializers import (fans, Initializer, Zeros, Ones, RandomNormal, RandomUniform,
                              VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal,
                              LecunUniform, LecunNormal, NAMES, get, from_config)

__all__ = ['fans', 'Initializer', 'Zeros', 'Ones', 'RandomNormal', 'RandomUniform',
           'VarianceScaling', 'GlorotUniform', 'GlorotNormal', 'HeUniform', 'HeNormal',
           'LecunUniform', 'LecunNormal', 'NAMES', 'get', 'from_config']
