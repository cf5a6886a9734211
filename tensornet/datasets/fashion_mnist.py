"""Fashion-MNIST: Zalando article images, a drop-in replacement for MNIST.

60,000 training and 10,000 test images, each 28 x 28 uint8 grey levels,
6,000 training and 1,000 test images per class.  Labels and classes:

=====  ===========
label  class
=====  ===========
0      T-shirt/top
1      Trouser
2      Pullover
3      Dress
4      Coat
5      Sandal
6      Shirt
7      Sneaker
8      Bag
9      Ankle boot
=====  ===========

On Debian, ``apt-get install dataset-fashion-mnist`` installs the files
into /usr/share/datasets/fashion-mnist/, where :func:`load_data` finds them.
"""

from . import mnist

NAME = "fashion-mnist"
FILES = mnist.FILES
#: Class name of each label, ``CLASS_NAMES[label]``.
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
#: Base URLs tried in order.  The canonical S3 website endpoint serves plain
#: HTTP only; the SHA-256 check below guards the data's integrity.
URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
#: Accepted SHA-256 digests of each gzip file: the upstream file, and the one
#: Debian's dataset-fashion-mnist ships (same data, gzip header without the
#: original file name).
SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
    "train-labels-idx1-ubyte.gz": (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
    "t10k-images-idx3-ubyte.gz": (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
    "t10k-labels-idx1-ubyte.gz": (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
}
HINT = ("Install it with 'apt-get install dataset-fashion-mnist' (Debian/Ubuntu), "
        "or pass path= a directory holding the four Fashion-MNIST files.")


def load_data(path=None, *, urls=None):
    """Load Fashion-MNIST, like ``keras.datasets.fashion_mnist.load_data``.

    ``path`` is a directory holding the four IDX files (gzipped or not);
    without it the files are looked up as :mod:`tensornet.datasets.cache`
    describes (including /usr/share/datasets/fashion-mnist/), and
    downloaded into the user cache if absent, from ``urls`` (base URLs),
    else ``$TENSORNET_DATA_URL``, else :data:`URLS`.

    Returns ``(x_train, y_train), (x_test, y_test)``: ``x_train`` uint8
    (60000, 28, 28), ``y_train`` uint8 (60000,), ``x_test`` uint8
    (10000, 28, 28), ``y_test`` uint8 (10000,).  Labels index
    :data:`CLASS_NAMES`: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress,
    4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.
    """
    return mnist.load_mnist_like(NAME, FILES, path, urls=urls, default_urls=URLS,
                                 sha256=SHA256, hint=HINT)
