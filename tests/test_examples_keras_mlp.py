"""Keras' classic MLP example (Dense 512 relu, Dropout 0.2, Dense 512 relu, Dropout 0.2, Dense 10
softmax; RMSprop; batch 128; categorical cross-entropy) run by tensornet with only its imports
changed: examples/keras_mlp_fashion_mnist.py.

The full script (60,000 examples, 5 epochs) reaches about 0.87 test accuracy; the slow test
below runs the unchanged script on the real Fashion-MNIST but lets ``fit`` see only the first
``SUBSET`` training examples, to keep CI's time in bounds.
"""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "keras_mlp_fashion_mnist.py"
SUBSET = 12000

#: tensornet import -> the Keras import it replaces.
IMPORTS = {
    "import tensornet as keras": "import keras",
    "from tensornet.datasets import fashion_mnist": "from keras.datasets import fashion_mnist",
    "from tensornet.models import Sequential": "from keras.models import Sequential",
    "from tensornet.layers import Dense, Dropout": "from keras.layers import Dense, Dropout",
    "from tensornet.optimizers import RMSprop": "from keras.optimizers import RMSprop",
}


def _code_lines(text):
    body = re.sub(r"'''.*?'''", "", text, count=1, flags=re.S)  # the module docstring
    return [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_only_the_imports_differ_from_keras():
    lines = _code_lines(EXAMPLE.read_text())
    mentions = [line for line in lines if "tensornet" in line]
    assert sorted(mentions) == sorted(IMPORTS)
    keras_version = [IMPORTS.get(line, line) for line in lines]
    text = "\n".join(keras_version)
    assert "tensornet" not in text
    for fragment in ("model.add(Dense(512, activation='relu', input_shape=(784,)))", "model.add(Dropout(0.2))",
                     "model.add(Dense(num_classes, activation='softmax'))", "optimizer=RMSprop()",
                     "batch_size = 128", "loss='categorical_crossentropy'",
                     "y_train = keras.utils.to_categorical(y_train, num_classes)"):
        assert fragment in text


def _dataset_available():
    try:
        from tensornet.datasets import fashion_mnist

        fashion_mnist.load_data()
    except Exception:  # noqa: BLE001 -- any reason the real data is missing skips the test
        return False
    return True


@pytest.mark.slow
def test_example_trains_on_real_fashion_mnist(monkeypatch, capsys):
    if not _dataset_available():
        pytest.skip("Fashion-MNIST is not installed (Debian: dataset-fashion-mnist)")
    from tensornet.models import Sequential
    from tensornet.utils import set_random_seed

    real_fit = Sequential.fit

    def fit_on_subset(self, x, y, *args, **kwargs):
        return real_fit(self, x[:SUBSET], y[:SUBSET], *args, **kwargs)

    monkeypatch.setattr(Sequential, "fit", fit_on_subset)
    set_random_seed(0)  # the script seeds nothing; fixing the global seed makes the run repeatable
    namespace = runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    accuracy = float(re.search(r"Test accuracy: ([\d.]+)", out).group(1))
    history = namespace["history"].history
    assert len(history["loss"]) == 5 and history["loss"][-1] < history["loss"][0]
    assert "val_accuracy" in history
    assert accuracy >= 0.80, out  # the full 60,000-example run reaches about 0.87
