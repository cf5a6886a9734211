"""Activation layer: forward equals the activation function, backward against finite
differences (float64), and the softmax + cross-entropy fusion through an Activation layer."""
import numpy as np
import pytest

from helpers import away_from_zero, check_gradient, numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet import activations, losses
from tensornet.layers import Activation, Dense
from tensornet.models import Sequential

ops = numpy_ops()
NAMES = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "step", "heaviside"]


@pytest.mark.parametrize("name", NAMES)
def test_activation_layer_forward_and_gradient(name):
    rng = np.random.default_rng(0)
    x = away_from_zero(rng, (6, 5), low=1e-3, high=3.0)
    layer = Activation(name, dtype="float64")
    y = layer(x).copy()
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, activations.get(name).forward(ops, x.copy()), rtol=0, atol=0)
    assert layer.output_activation == activations.get(name).name
    assert layer.count_params() == 0
    r = rng.standard_normal(x.shape)

    def loss():
        return np.sum(r * layer.forward(x))

    layer.forward(x)
    dx = layer.backward(r.copy()).copy()
    check_gradient(loss, x, dx, what=f"Activation({name})")


def test_activation_layer_leaky_relu_alpha():
    x = np.array([[-2.0, 3.0]])
    layer = Activation(activations.LeakyReLU(0.3), dtype="float64")
    np.testing.assert_allclose(layer(x), [[-0.6, 3.0]], rtol=1e-15)
    np.testing.assert_allclose(layer.backward(np.ones((1, 2))), [[0.3, 1.0]], rtol=1e-15)
    assert layer.get_config()["activation"] == {"name": "leaky_relu", "alpha": 0.3}


def test_activation_layer_logits_and_through_activation_false():
    x = np.random.default_rng(1).standard_normal((3, 4))
    layer = Activation("softmax", dtype="float64")
    layer(x)
    assert layer.logits is not None
    np.testing.assert_array_equal(layer.logits, x)
    dy = np.ones((3, 4))
    assert layer.backward(dy, through_activation=False) is dy


def test_dense_then_activation_softmax_model_gradient_float64():
    """Dense(linear) -> Activation(softmax) with categorical cross-entropy fuses through the
    Activation layer's logits; the flat gradient equals finite differences of the batch loss."""
    rng = np.random.default_rng(2)
    model = Sequential([Dense(3, input_shape=(4,)), Activation("softmax")], dtype="float64", seed=0)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert model.fused_output == "softmax"
    x = rng.standard_normal((5, 4))
    y = np.eye(3)[rng.integers(0, 3, size=5)]
    params, grads = model.store.groups["float64"]
    pred = model.forward(x, training=True)
    dy = np.empty_like(pred)
    model.loss.fused(ops, model.layers[-1].logits, pred, y, dy)
    model.backward(dy, through_activation=False)
    analytic = grads.copy()
    loss = losses.CategoricalCrossentropy()
    check_gradient(lambda: float(loss.total(ops, model.forward(x), y)) / 5, params, analytic,
                   what="Dense -> Activation(softmax) with CE")


def test_unknown_activation_name():
    with pytest.raises(ValueError, match="unknown activation 'gelu_x'"):
        Activation("gelu_x")
    with pytest.raises(TypeError, match="activation"):
        Activation(3.0)
