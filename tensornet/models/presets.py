"""Ready-made models with tested defaults: ``fashion_cnn`` for 28x28 grey images (Fashion-MNIST,
MNIST), the network ``tensornet train --model cnn`` trains."""
from __future__ import annotations

from ..nn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from .sequential import Sequential

#: The training defaults ``tensornet train --model cnn`` uses with :func:`fashion_cnn` (SGD with
#: Nesterov momentum and a cosine schedule, as the MLP; a smaller peak learning rate).
FASHION_CNN_TRAINING = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "batch_size": 128, "epochs": 10}


def fashion_cnn(input_shape=(28, 28, 1), classes=10, dtype="float32", seed=0):
    """Conv(32, 3x3, same, relu) - MaxPool(2) - Conv(64, 3x3, relu) - MaxPool(2) - Flatten -
    Dropout(0.25) - Dense(128, relu) - Dropout(0.4) - Dense(``classes``, softmax): 315,146
    parameters for 28x28x1 inputs. Returned uncompiled (``compile`` it with any optimizer).

    >>> model = fashion_cnn()
    """
    return Sequential([Conv2D(32, 3, padding="same", activation="relu", input_shape=tuple(input_shape)),
                       MaxPooling2D(), Conv2D(64, 3, activation="relu"), MaxPooling2D(), Flatten(), Dropout(0.25),
                       Dense(128, activation="relu"), Dropout(0.4), Dense(classes, activation="softmax")],
                      dtype=dtype, seed=seed)
