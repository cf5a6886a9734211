"""Flatten: (batch, d1, d2, ...) -> (batch, d1 d2 ...) as a view; backward restores the shape."""
import numpy as np
import pytest

from helpers import check_gradient, numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet import losses
from tensornet.layers import Dense, Flatten
from tensornet.models import Sequential

ops = numpy_ops()


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (7,)])
def test_flatten_round_trip(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5,) + shape)
    layer = Flatten(dtype="float64")
    y = layer(x)
    assert y.shape == (5, int(np.prod(shape)))
    np.testing.assert_array_equal(y, x.reshape(5, -1))
    assert np.shares_memory(y, x)  # a view, no copy
    assert layer.output_shape == (int(np.prod(shape)),)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx, dy.reshape(x.shape))
    np.testing.assert_array_equal(layer.backward(layer.forward(x)), x)  # exact inverse
    assert layer.count_params() == 0


def test_flatten_then_dense_gradient_float64():
    rng = np.random.default_rng(1)
    model = Sequential([Dense(3, activation="tanh", input_shape=(4,)), Dense(6, activation="tanh"),
                        Flatten(), Dense(2, activation="sigmoid")], dtype="float64", seed=0)
    # Flatten in the middle of a model (a no-op on 2-D) must pass gradients through unchanged
    model.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((4, 4))
    y = rng.uniform(0, 1, size=(4, 2))
    params, grads = model.store.groups["float64"]
    pred = model.forward(x, training=True)
    model.backward(model.loss.gradient(ops, pred, y))
    analytic = grads.copy()
    check_gradient(lambda: float(losses.mse.total(ops, model.forward(x), y)) / 4, params, analytic,
                   what="model with Flatten")


def test_flatten_first_layer_images():
    rng = np.random.default_rng(2)
    model = Sequential([Flatten(input_shape=(3, 4)), Dense(2)], dtype="float64", seed=0)
    model.build()
    x = rng.standard_normal((6, 3, 4))
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(model.predict(x), x.reshape(6, 12) @ kernel + bias, rtol=1e-13)
    assert model.layers[0].output_shape == (12,)
    assert model.layers[1].weights["kernel"].shape == (12, 2)
