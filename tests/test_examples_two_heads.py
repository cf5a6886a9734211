"""examples/fashion_mnist_two_heads.py, end to end: the functional API (a skip connection, two
heads with their own losses and metrics) on a subset of the real Fashion-MNIST."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np
import pytest

from helpers import numpy_backend  # noqa: F401 (autouse fixture)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fashion_mnist_two_heads.py"


def _dataset_available():
    try:
        from tensornet.datasets import fashion_mnist

        fashion_mnist.load_data()
    except Exception:  # noqa: BLE001 -- any reason the real data is missing skips the test
        return False
    return True


def test_two_head_example_trains_on_a_subset(monkeypatch, capsys):
    if not _dataset_available():
        pytest.skip("Fashion-MNIST is not installed (Debian: dataset-fashion-mnist)")
    monkeypatch.setenv("EPOCHS", "2")
    monkeypatch.setenv("TRAIN_EXAMPLES", "4000")
    namespace = runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    history = namespace["history"].history
    assert list(history)[:5] == ["loss", "garment_loss", "upper_loss", "garment_accuracy", "upper_accuracy"]
    assert history["loss"][-1] < history["loss"][0]
    assert history["loss"][-1] == pytest.approx(history["garment_loss"][-1] + 0.5 * history["upper_loss"][-1],
                                                rel=1e-5)
    garment = float(re.search(r"Test garment accuracy: ([\d.]+)", out).group(1))
    upper = float(re.search(r"Test upper-body accuracy: ([\d.]+)", out).group(1))
    assert garment >= 0.60 and upper >= 0.85, out  # chance: 0.10 and 0.60
    assert "Connected to" in out and "skip (Add)" in out
    model = namespace["model"]
    garment_probs, upper_probs = model.predict(namespace["x_test"][:50])
    assert garment_probs.shape == (50, 10) and upper_probs.shape == (50, 1)
    assert np.all((upper_probs > 0) & (upper_probs < 1))
