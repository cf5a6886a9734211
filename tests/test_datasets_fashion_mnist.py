"""Tests for tensornet.datasets.fashion_mnist and mnist: tiny files, download, and the real data."""

import hashlib
import http.server
import os
import socket
import threading

import numpy as np
import pytest

from helpers import isolate_dataset_environment
from tensornet.datasets import cache, fashion_mnist, idx, mnist

SYSTEM_FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, data dir, system dir or proxy leaks into a test."""
    isolate_dataset_environment(tmp_path, monkeypatch)


@pytest.fixture
def no_system_dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "SYSTEM_DIRS", (str(tmp_path / "system"),))


def _tiny(directory, n_train=12, n_test=5, seed=0, gz=True):
    """Write a tiny dataset in MNIST layout; return its arrays."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(1, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        ext = ".gz" if gz else ""
        idx.write_idx(directory / f"{split}-images-idx3-ubyte{ext}", x)
        idx.write_idx(directory / f"{split}-labels-idx1-ubyte{ext}", y)
        arrays[split] = (x, y)
    return arrays


def _check(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for (x, y), (ex, ey) in (((x_train, y_train), arrays["train"]), ((x_test, y_test), arrays["t10k"])):
        assert x.dtype == np.uint8 and y.dtype == np.uint8
        assert x.shape == ex.shape and y.shape == ey.shape
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


@pytest.mark.parametrize("module", [fashion_mnist, mnist])
@pytest.mark.parametrize("gz", [True, False])
def test_load_from_path(tmp_path, module, gz):
    arrays = _tiny(tmp_path / "d", gz=gz)
    _check(module.load_data(path=tmp_path / "d"), arrays)


def test_load_from_data_env(tmp_path, monkeypatch, no_system_dirs):
    arrays = _tiny(tmp_path / "data" / "fashion-mnist", seed=3)
    monkeypatch.setenv(cache.DATA_ENV, str(tmp_path / "data"))
    _check(fashion_mnist.load_data(), arrays)


def test_count_mismatch_names_both_files(tmp_path):
    d = tmp_path / "d"
    _tiny(d)
    idx.write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(4, dtype=np.uint8))
    with pytest.raises(ValueError) as e:
        fashion_mnist.load_data(path=d)
    msg = str(e.value)
    assert str(d / "t10k-images-idx3-ubyte.gz") in msg and str(d / "t10k-labels-idx1-ubyte.gz") in msg
    assert "5 images" in msg and "4 labels" in msg


def test_wrong_image_size_and_label_range(tmp_path):
    d = tmp_path / "d"
    _tiny(d)
    idx.write_idx(d / "train-labels-idx1-ubyte.gz", np.full(12, 10, np.uint8))
    with pytest.raises(idx.IDXFormatError, match="label 10 out of range 0..9"):
        fashion_mnist.load_data(path=d)
    _tiny(d)
    idx.write_idx(d / "train-images-idx3-ubyte.gz", np.ones((12, 32, 32), np.uint8))
    with pytest.raises(idx.IDXFormatError, match="images are 32x32, expected 28x28"):
        fashion_mnist.load_data(path=d)


def test_swapped_files_are_rejected(tmp_path):
    d = tmp_path / "d"
    _tiny(d)
    os.replace(d / "train-labels-idx1-ubyte.gz", d / "tmp")
    os.replace(d / "train-images-idx3-ubyte.gz", d / "train-labels-idx1-ubyte.gz")
    os.replace(d / "tmp", d / "train-images-idx3-ubyte.gz")
    with pytest.raises(idx.IDXFormatError, match="wrong magic 0x00000801, expected 0x00000803"):
        fashion_mnist.load_data(path=d)


def test_missing_path_files(tmp_path):
    d = tmp_path / "d"
    _tiny(d)
    (d / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        fashion_mnist.load_data(path=d)


def test_class_names():
    assert fashion_mnist.CLASS_NAMES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    for name in fashion_mnist.CLASS_NAMES:
        assert name in fashion_mnist.load_data.__doc__


@pytest.fixture
def server(tmp_path):
    """Serve a tiny Fashion-MNIST from a real HTTP server on 127.0.0.1."""
    root = tmp_path / "served"
    arrays = _tiny(root, seed=7)
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    digests = {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in fashion_mnist.FILES}
    yield f"http://127.0.0.1:{srv.server_port}/", arrays, digests, hits
    srv.shutdown()
    srv.server_close()
    thread.join()


def test_download_then_cached(server, tmp_path, monkeypatch, no_system_dirs):
    url, arrays, digests, hits = server
    monkeypatch.setenv(cache.URL_ENV, url)
    monkeypatch.setattr(fashion_mnist, "SHA256", digests)
    _check(fashion_mnist.load_data(), arrays)
    cached = tmp_path / "xdg" / "tensornet" / "datasets" / "fashion-mnist"
    assert sorted(os.listdir(cached)) == sorted(fashion_mnist.FILES)
    assert len(hits) == 4
    _check(fashion_mnist.load_data(), arrays)
    assert len(hits) == 4


def test_download_checksum_mismatch(server, tmp_path, monkeypatch, no_system_dirs):
    url, arrays, digests, hits = server
    bad = dict(digests, **{"train-labels-idx1-ubyte.gz": "ab" * 32})
    monkeypatch.setattr(fashion_mnist, "SHA256", bad)
    with pytest.raises(cache.ChecksumError, match=r"train-labels-idx1-ubyte.gz: SHA-256 mismatch .*"
                                                  r"expected (ab){32}, got " + digests["train-labels-idx1-ubyte.gz"]):
        fashion_mnist.load_data(urls=url)
    cached = tmp_path / "xdg" / "tensornet" / "datasets" / "fashion-mnist"
    assert os.listdir(cached) == ["train-images-idx3-ubyte.gz"]


def test_download_failure_tells_how_to_install(tmp_path, no_system_dirs):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(cache.DownloadError) as e:
        fashion_mnist.load_data(urls=f"http://127.0.0.1:{port}/")
    assert "apt-get install dataset-fashion-mnist" in str(e.value) and "path=" in str(e.value)


def test_known_digests_cover_the_system_files():
    if not os.path.isdir(SYSTEM_FASHION):
        pytest.skip(f"{SYSTEM_FASHION} absent (apt-get install dataset-fashion-mnist)")
    for f in fashion_mnist.FILES:
        with open(os.path.join(SYSTEM_FASHION, f), "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() in fashion_mnist.SHA256[f]


def test_real_fashion_mnist_from_system_dir(tmp_path):
    if not os.path.isdir(SYSTEM_FASHION):
        pytest.skip(f"{SYSTEM_FASHION} absent (apt-get install dataset-fashion-mnist)")
    assert "/usr/share/datasets" in cache.SYSTEM_DIRS  # found through the default search
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)
    np.testing.assert_array_equal(y_train[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    np.testing.assert_array_equal(y_test[:10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
    assert x_train.min() == 0 and x_train.max() == 255
    assert x_train.sum(dtype=np.int64) == 3431114169  # mean 72.940 (0.2860 * 255)
    assert x_test.sum(dtype=np.int64) == 573469082
    assert not os.path.exists(tmp_path / "xdg")  # found in place, nothing downloaded or cached
