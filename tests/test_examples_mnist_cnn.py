"""Keras' mnist_cnn (examples/mnist_cnn.py) run by tensornet with only its imports changed: the
script mentions tensornet in its imports alone, and (slow) one epoch of it on a subset of the
real Fashion-MNIST learns."""
from __future__ import annotations

import ast
import os
import pathlib
import runpy

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.py"
SUBSET = 6000


def test_only_the_imports_mention_tensornet():
    tree = ast.parse(EXAMPLE.read_text())
    body = [node for node in tree.body[1:] if not isinstance(node, (ast.Import, ast.ImportFrom))]
    text = "\n".join(ast.unparse(node) for node in body)
    assert body and "tensornet" not in text
    for fragment in ("Conv2D(32, kernel_size=(3, 3), activation='relu', input_shape=input_shape)",
                     "Conv2D(64, (3, 3), activation='relu')", "MaxPooling2D(pool_size=(2, 2))",
                     "K.image_data_format() == 'channels_first'"):
        assert fragment in text


def test_image_data_format_is_channels_last():
    from tensornet import backend

    assert backend.image_data_format() == "channels_last"


@pytest.mark.slow
def test_one_epoch_on_a_subset_learns(capsys, monkeypatch):
    if not pathlib.Path("/usr/share/datasets/fashion-mnist").is_dir() and not os.environ.get("TENSORNET_DATA"):
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    from tensornet.models import Sequential
    from tensornet.utils import set_random_seed

    real_fit, real_evaluate = Sequential.fit, Sequential.evaluate
    monkeypatch.setattr(Sequential, "fit", lambda self, x, y, *a, **k: real_fit(
        self, x[:SUBSET], y[:SUBSET], *a, **{**k, "validation_data": None}))
    monkeypatch.setattr(Sequential, "evaluate", lambda self, x, y, *a, **k: real_evaluate(
        self, x[:2000], y[:2000], *a, **k))
    monkeypatch.setenv("EPOCHS", "1")
    set_random_seed(0)
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    accuracy = float(capsys.readouterr().out.split("Test accuracy:")[1].split()[0])
    assert accuracy > 0.70  # one epoch over 6,000 images
