"""Keras 2 scripts run with only their imports changed (examples/keras2_*.py)."""
import os
import pathlib
import runpy

import numpy as np
import pytest

from tensornet.utils import set_random_seed

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_keras2_sgd_mlp_runs_and_learns_its_training_set(capsys):
    np.random.seed(0)
    runpy.run_path(str(EXAMPLES / "keras2_sgd_mlp.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Epoch 20/20" in out
    loss, accuracy = eval(out.strip().splitlines()[-1])  # the script prints [loss, accuracy]
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    first = float(out.split("Epoch 1/20")[1].split("loss: ")[1].split()[0])
    last = float(out.split("Epoch 20/20")[1].split("loss: ")[1].split()[0])
    assert last < first  # SGD with Nesterov momentum and decay reduced the training loss


@pytest.mark.parametrize("script", ["keras2_sgd_mlp.py", "keras2_mnist_mlp.py"])
def test_keras2_scripts_mention_tensornet_only_in_imports(script):
    import ast

    tree = ast.parse((EXAMPLES / script).read_text())
    body = [node for node in tree.body[1:] if not isinstance(node, (ast.Import, ast.ImportFrom))]
    assert body and not any("tensornet" in ast.unparse(node) for node in body)


@pytest.mark.slow
def test_keras2_mnist_mlp_on_fashion_mnist(capsys, monkeypatch):
    if not pathlib.Path("/usr/share/datasets/fashion-mnist").is_dir() and not os.environ.get("TENSORNET_DATA"):
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    monkeypatch.setenv("EPOCHS", "1")
    set_random_seed(0)
    runpy.run_path(str(EXAMPLES / "keras2_mnist_mlp.py"), run_name="__main__")
    out = capsys.readouterr().out
    accuracy = float(out.split("Test accuracy:")[1].split()[0])
    assert accuracy > 0.80  # one epoch of the textbook MLP on Fashion-MNIST
