"""Every public building block appears in at least one numeric test.

Reads the source of the numeric test modules and asserts that each layer in
``tensornet.layers.__all__``, each name in ``activations.NAMES``, ``losses.NAMES``,
``initializers.NAMES`` and ``optimizers.NAMES`` occurs there: a registry name as a quoted
string literal, or the class (or factory) it resolves to by name. A new activation, loss,
initializer, optimizer or layer therefore fails this test until a numeric test uses it.
"""
import inspect
import re
from pathlib import Path

import pytest

from tensornet import activations, initializers, layers, losses, optimizers
from tensornet.nn import activations as nn_activations, initializers as nn_initializers, losses as nn_losses
from tensornet.optim import optimizers as optim_optimizers

TESTS = Path(__file__).resolve().parent
NUMERIC_MODULES = (
    "test_activations.py", "test_losses.py", "test_layers_dense.py", "test_layers_activation.py",
    "test_layers_flatten.py", "test_layers_dropout.py", "test_layers_batch_normalization.py", "test_models.py", "test_optimizers.py",
    "test_optimizers_torch_parity.py", "test_schedules.py", "test_initializers.py", "test_metrics.py",
    "test_utils.py",
    "test_layers_merge.py", "test_models_graph.py",
    "test_layers_conv2d.py", "test_layers_pooling.py", "test_layers_reshape.py",
)


def numeric_sources():
    found = {path.name: path.read_text() for path in sorted(TESTS.glob("test_*.py"))
             if path.name in NUMERIC_MODULES}
    return found


def test_numeric_modules_exist():
    missing = sorted(set(NUMERIC_MODULES) - set(numeric_sources()))
    assert not missing, f"numeric test modules missing: {missing}"


def occurs_as_string(name, sources):
    pattern = re.compile(r"""(["'])""" + re.escape(name) + r"\1")
    return [module for module, text in sources.items() if pattern.search(text)]


def occurs_as_identifier(name, sources):
    pattern = re.compile(r"\b" + re.escape(name) + r"\b")
    return [module for module, text in sources.items() if pattern.search(text)]


def registry_target_name(registry, name):
    """The class (or factory function) ``name`` resolves to, when it has a public name."""
    target = registry.get(name)
    if target is None:
        return None
    if inspect.isclass(target) or (inspect.isfunction(target) and target.__name__[:1].isupper()):
        return target.__name__
    return None


@pytest.mark.parametrize("name", layers.__all__)
def test_every_layer_is_tested(name):
    assert occurs_as_identifier(name, numeric_sources()), f"layer {name} appears in no numeric test"


@pytest.mark.parametrize("module,registry", [
    (activations, nn_activations._REGISTRY),
    (losses, nn_losses._REGISTRY),
    (initializers, nn_initializers._REGISTRY),
    (optimizers, optim_optimizers._REGISTRY),
], ids=["activations", "losses", "initializers", "optimizers"])
def test_every_registered_name_is_tested(module, registry):
    sources = numeric_sources()
    missing = []
    for name in module.NAMES:
        target = registry_target_name(registry, name)
        if occurs_as_string(name, sources):
            continue
        if target and occurs_as_identifier(target, sources):
            continue
        missing.append(name if not target else f"{name} ({target})")
    assert not missing, f"{module.__name__}: no numeric test uses {missing}"


def test_names_are_what_the_library_exports():
    # guard against a vacuous pass: the registries are non-empty and hold what the spec lists
    assert {"linear", "step", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"} <= set(activations.NAMES)
    assert {"mse", "mae", "binary_crossentropy", "categorical_crossentropy",
            "sparse_categorical_crossentropy"} <= set(losses.NAMES)
    assert {"glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal", "random_normal",
            "zeros", "ones"} <= set(initializers.NAMES)
    assert {"sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam"} <= set(optimizers.NAMES)
    assert {"Dense", "Dropout", "Activation", "Flatten", "BatchNormalization"} <= set(layers.__all__)
