"""The fashion_cnn preset and ``tensornet train --model cnn``: the architecture, a run of the
command on a tiny data set (the saved file holds the CNN), and (slow) the preset learning on a
subset of the real Fashion-MNIST with the command's training defaults."""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from helpers import numpy_backend, write_tiny_dataset  # noqa: F401 (autouse fixture)

from tensornet import cli
from tensornet.models import load_model
from tensornet.models.presets import FASHION_CNN_TRAINING, fashion_cnn


def test_fashion_cnn_architecture():
    model = fashion_cnn()
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense", "Dropout", "Dense"]
    assert [layer.output_shape for layer in model.layers] == [
        (28, 28, 32), (14, 14, 32), (12, 12, 64), (6, 6, 64), (2304,), (2304,), (128,), (128,), (10,)]
    model.build()
    assert model.count_params() == 315146
    assert fashion_cnn(input_shape=(32, 32, 3), classes=5).output_shape == (5,)
    first, second = fashion_cnn(seed=1), fashion_cnn(seed=1)
    first.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    second.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights()))  # seeded


def test_train_model_cnn_on_a_tiny_dataset(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data", n_train=96, n_test=32)
    path = tmp_path / "cnn.npz"
    assert cli.main(["train", "--data", str(data), "--model", "cnn", "--epochs", "1", "--batch-size", "32",
                     "--verbose", "0", "--validation-split", "0", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "model cnn" in out and "lr=0.05 cosine" in out and "test accuracy" in out
    model = load_model(path)
    assert type(model.layers[0]).__name__ == "Conv2D" and model.count_params() == 315146
    assert model.optimizer.iterations == 3


def test_train_resume_of_a_cnn_takes_images_whatever_model_is_named(tmp_path, capsys):
    """--resume continues the saved CNN on (n, 28, 28, 1) images even without --model cnn: the
    saved model's input shape decides the layout."""
    data = write_tiny_dataset(tmp_path / "data", n_train=96, n_test=32)
    path = tmp_path / "cnn.npz"
    common = ["train", "--data", str(data), "--batch-size", "32", "--verbose", "0", "--validation-split", "0"]
    assert cli.main(common + ["--model", "cnn", "--epochs", "1", "--save", str(path)]) == 0
    assert cli.main(common + ["--epochs", "2", "--resume", str(path)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert load_model(path).optimizer.iterations == 6


@pytest.mark.slow
def test_the_preset_learns_fashion_mnist_with_the_commands_defaults():
    """Two epochs over 6,000 real images with the command's optimizer (SGD, Nesterov momentum,
    cosine decay from 0.05 over the run); the full 10-epoch run's figures are in bench/results."""
    if not pathlib.Path("/usr/share/datasets/fashion-mnist").is_dir() and not os.environ.get("TENSORNET_DATA"):
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    from tensornet.datasets import fashion_mnist
    from tensornet.optimizers import SGD
    from tensornet.schedules import CosineDecay

    (x, y), (x_test, y_test) = fashion_mnist.load_data()
    x = (x[:6000].astype("float32") / 255.0).reshape(-1, 28, 28, 1)
    x_test = (x_test[:2000].astype("float32") / 255.0).reshape(-1, 28, 28, 1)
    model = fashion_cnn(seed=0)
    steps = 2 * -(-len(x) // FASHION_CNN_TRAINING["batch_size"])
    model.compile(optimizer=SGD(learning_rate=CosineDecay(FASHION_CNN_TRAINING["lr"], steps),
                                momentum=FASHION_CNN_TRAINING["momentum"], nesterov=FASHION_CNN_TRAINING["nesterov"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y[:6000], batch_size=FASHION_CNN_TRAINING["batch_size"], epochs=2, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test[:2000], verbose=0)
    assert accuracy > 0.75
