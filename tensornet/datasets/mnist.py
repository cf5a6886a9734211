"""MNIST handwritten digits: 60,000 training and 10,000 test images.

Each image is 28 x 28 uint8 grey levels; labels are the digits 0..9.
"""

from . import cache, idx

NAME = "mnist"
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
#: Base URLs tried in order (the mirror torchvision uses).
URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",)
#: SHA-256 of the original gzip files (as published by Yann LeCun).
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
HINT = ("Pass path= a directory holding the four MNIST files, or set TENSORNET_DATA "
        "to a directory with an 'mnist' folder of them.")


def _load_split(images_path, labels_path, num_classes=10):
    """Read one images/labels pair and check that they belong together."""
    x = idx.read_images(images_path)
    y = idx.read_labels(labels_path)
    if x.shape[1:] != (28, 28):
        raise idx.IDXFormatError(f"{images_path}: images are {x.shape[1]}x{x.shape[2]}, expected 28x28")
    if len(x) != len(y):
        raise ValueError(f"{images_path} holds {len(x)} images but {labels_path} "
                         f"holds {len(y)} labels")
    if len(y) and int(y.max()) >= num_classes:
        raise idx.IDXFormatError(f"{labels_path}: label {int(y.max())} out of range 0..{num_classes - 1}")
    return x, y


def load_mnist_like(name, files, path=None, *, urls=None, default_urls=(), sha256=None, hint=None):
    """Find (or download) the four MNIST-layout files of ``name`` and load them.

    Returns ``(x_train, y_train), (x_test, y_test)``.
    """
    tr_x, tr_y, te_x, te_y = cache.find_dataset(
        name, files, path, urls=urls, default_urls=default_urls, sha256=sha256, hint=hint)
    return _load_split(tr_x, tr_y), _load_split(te_x, te_y)


def load_data(path=None, *, urls=None):
    """Load MNIST, like ``keras.datasets.mnist.load_data``.

    ``path`` is a directory holding the four IDX files (gzipped or not);
    without it the files are looked up as :mod:`tensornet.datasets.cache`
    describes, and downloaded into the user cache if absent, from ``urls``
    (base URLs), else ``$TENSORNET_DATA_URL``, else :data:`URLS`.

    Returns ``(x_train, y_train), (x_test, y_test)``: ``x_train`` uint8
    (60000, 28, 28), ``y_train`` uint8 (60000,), ``x_test`` uint8
    (10000, 28, 28), ``y_test`` uint8 (10000,).
    """
    return load_mnist_like(NAME, FILES, path, urls=urls, default_urls=URLS,
                           sha256=SHA256, hint=HINT)
