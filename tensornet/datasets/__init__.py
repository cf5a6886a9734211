"""Datasets, loaded like ``keras.datasets``.

``fashion_mnist.load_data()`` and ``mnist.load_data()`` return
``(x_train, y_train), (x_test, y_test)`` as uint8 numpy arrays.  Files are
found on disk or downloaded into the user cache (see :mod:`.cache`), and
read with the strict IDX reader in :mod:`.idx`.
"""

from . import fashion_mnist, idx, mnist

__all__ = ["fashion_mnist", "idx", "mnist"]
