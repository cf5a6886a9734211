"""Dense: y = f(x W + b). Forward against NumPy, backward (inputs, kernel, bias) against
central finite differences in float64, for every activation, and its shape errors."""
import numpy as np
import pytest

from helpers import check_gradient, numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet import activations, initializers
from tensornet.layers import Dense
from tensornet.models import Sequential

ops = numpy_ops()
ACTIVATIONS = [("linear", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("relu", 0.0), ("leaky_relu", 0.01),
               ("leaky_relu", 0.3), ("softmax", 0.0), ("step", 0.0)]


def numpy_activation(name, z, alpha):
    return {
        "linear": lambda: z,
        "sigmoid": lambda: 1 / (1 + np.exp(-z)),
        "tanh": lambda: np.tanh(z),
        "relu": lambda: np.maximum(z, 0),
        "leaky_relu": lambda: np.where(z > 0, z, alpha * z),
        "softmax": lambda: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(
            -1, keepdims=True),
        "step": lambda: (z >= 0).astype(z.dtype),
    }[name]()


def make_dense(name, alpha, use_bias=True, n_in=4, units=3, seed=0):
    activation = activations.LeakyReLU(alpha) if name == "leaky_relu" else name
    layer = Dense(units, activation=activation, use_bias=use_bias, dtype="float64")
    rng = np.random.default_rng(seed)
    # build on a float64 batch (a private flat store), then set well-conditioned weights whose
    # pre-activations stay clear of the relu / step kinks by far more than the FD step
    for attempt in range(1000):
        x = rng.uniform(-1.5, 1.5, size=(5, n_in))
        kernel = rng.uniform(-1, 1, size=(n_in, units))
        bias = rng.uniform(-0.5, 0.5, size=units)
        z = x @ kernel + (bias if use_bias else 0)
        if np.min(np.abs(z)) > 1e-3:
            break
    layer(x)  # builds
    layer.weights["kernel"][...] = kernel
    if use_bias:
        layer.weights["bias"][...] = bias
    return layer, x


@pytest.mark.parametrize("name,alpha", ACTIVATIONS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_forward_matches_numpy(name, alpha, use_bias):
    layer, x = make_dense(name, alpha, use_bias)
    y = layer(x)
    assert y.dtype == np.float64 and y.shape == (5, 3)
    z = x @ layer.weights["kernel"] + (layer.weights["bias"] if use_bias else 0)
    np.testing.assert_allclose(y, numpy_activation(name, z, alpha), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name,alpha", ACTIVATIONS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients_match_finite_differences(name, alpha, use_bias):
    layer, x = make_dense(name, alpha, use_bias, seed=1)
    r = np.random.default_rng(2).standard_normal((5, 3))  # L = sum(r * y)

    def loss():
        return np.sum(r * layer.forward(x, training=True))

    layer.forward(x, training=True)
    dx = layer.backward(r.copy()).copy()
    grads = {k: v.copy() for k, v in layer.gradients.items()}
    assert set(grads) == ({"kernel", "bias"} if use_bias else {"kernel"})
    check_gradient(loss, x, dx, what=f"Dense({name}) d/dx")
    check_gradient(loss, layer.weights["kernel"], grads["kernel"], what=f"Dense({name}) d/dkernel")
    if use_bias:
        check_gradient(loss, layer.weights["bias"], grads["bias"], what=f"Dense({name}) d/dbias")


def test_dense_backward_formulas():
    """dkernel = x^T dz, dbias = sum_rows(dz), dx = dz W^T with dz = dy * f'(z)."""
    layer, x = make_dense("tanh", 0.0, seed=3)
    dy = np.random.default_rng(4).standard_normal((5, 3))
    y = layer.forward(x).copy()
    dx = layer.backward(dy.copy())
    dz = dy * (1 - y ** 2)
    np.testing.assert_allclose(layer.gradients["kernel"], x.T @ dz, rtol=1e-13)
    np.testing.assert_allclose(layer.gradients["bias"], dz.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(dx, dz @ layer.weights["kernel"].T, rtol=1e-13)


def test_dense_through_activation_false_takes_logit_gradient():
    layer, x = make_dense("softmax", 0.0, seed=5)
    dz = np.random.default_rng(6).standard_normal((5, 3))
    layer.forward(x)
    np.testing.assert_allclose(layer.logits, x @ layer.weights["kernel"] + layer.weights["bias"], rtol=1e-13)
    dx = layer.backward(dz.copy(), through_activation=False)
    np.testing.assert_allclose(layer.gradients["kernel"], x.T @ dz, rtol=1e-13)
    np.testing.assert_allclose(dx, dz @ layer.weights["kernel"].T, rtol=1e-13)


def test_dense_default_initializers_and_param_count():
    model = Sequential(seed=0)
    model.add(Dense(300, input_shape=(500,)))
    model.build()
    kernel, bias = model.get_weights()
    assert kernel.shape == (500, 300) and bias.shape == (300,)
    assert model.layers[0].count_params() == 500 * 300 + 300
    limit = np.sqrt(6 / (500 + 300))
    assert np.max(np.abs(kernel)) <= limit and np.max(np.abs(kernel)) > 0.99 * limit
    np.testing.assert_allclose(kernel.std(), limit / np.sqrt(3), rtol=0.02)
    np.testing.assert_array_equal(bias, 0.0)
    assert isinstance(Dense(2).bias_initializer, initializers.Zeros)
    assert Dense(2).kernel_initializer.name == "glorot_uniform"


def test_dense_shape_errors():
    for bad in (0, -3, 2.5, True, "3"):
        with pytest.raises(ValueError, match="units"):
            Dense(bad)
    with pytest.raises(TypeError, match="use_bias"):
        Dense(3, use_bias=1)
    model = Sequential()
    with pytest.raises(ValueError, match="Flatten"):
        model.add(Dense(3, input_shape=(4, 5)))
    layer, x = make_dense("linear", 0.0)
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(4, 3\)|inner dimensions"):
        layer.forward(np.ones((2, 5)))
    model = Sequential([Dense(4, input_shape=(3,)), Dense(2)])
    with pytest.raises(ValueError, match="input_shape"):
        model.add(Dense(2, input_shape=(5,)))
    with pytest.raises(ValueError, match="kernel_initializer"):
        Dense(3, kernel_initializer="nope")
    with pytest.raises(ValueError, match="activation"):
        Dense(3, activation="swishy")


def test_dense_output_shape_and_input_dim():
    layer = Dense(7, input_dim=3)
    assert layer.input_shape == (3,)
    assert layer.build((3,), ops=ops, dtype="float32") == (7,)
    assert layer.weight_specs() == [("kernel", (3, 7), "float32"), ("bias", (7,), "float32")]


def test_freezing_a_layer_is_refused_rather_than_ignored():
    with pytest.raises(ValueError, match="trainable=False"):
        Dense(3, trainable=False)
