"""Dense forward (x W, bias, relu fused) and backward (relu gradient, dW, db, dx)."""
import numpy as np
import pytest

from conftest import host, rand
from tensornet.layers import Dense
from tensornet.models import Sequential

CASES = [(128, 784, 512), (128, 512, 512), (32, 784, 64), (256, 2048, 2048)]


def _layer(ops, fan_in, fan_out, needs_input_grad=True):
    """A built relu Dense layer of a one-layer model on ``ops`` (its weights views into the
    model's flat buffer, as in training), bias -0.1 ... 0.1, computing dL/dx when asked
    (``needs_input_grad``: a first layer otherwise skips it)."""
    model = Sequential([Dense(fan_out, activation="relu", input_shape=(fan_in,))], seed=0)
    model.compile(optimizer="sgd", loss="mse", backend=ops)
    layer = model.layers[0]
    layer.weights["bias"][...] = ops.asarray(np.linspace(-0.1, 0.1, fan_out, dtype=np.float32))
    layer.needs_input_grad = needs_input_grad
    return layer


@pytest.mark.parametrize("n, fan_in, fan_out", CASES, ids=[f"{n}x{i}x{o}" for n, i, o in CASES])
def test_dense_forward(run, ops, n, fan_in, fan_out):
    layer = _layer(ops, fan_in, fan_out)
    x = rand(ops, np.random.default_rng(0), (n, fan_in))
    y = layer.forward(x, training=True)
    expected = np.maximum(host(ops, x) @ host(ops, layer.weights["kernel"]) + host(ops, layer.weights["bias"]), 0)
    np.testing.assert_allclose(host(ops, y), expected, rtol=1e-3, atol=1e-3)
    run(layer.forward, x, training=True, rate=(n / 1.0, "samples/s"))


@pytest.mark.parametrize("n, fan_in, fan_out", CASES, ids=[f"{n}x{i}x{o}" for n, i, o in CASES])
def test_dense_backward(run, ops, n, fan_in, fan_out):
    layer = _layer(ops, fan_in, fan_out)
    rng = np.random.default_rng(1)
    x, dy = rand(ops, rng, (n, fan_in)), rand(ops, rng, (n, fan_out))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    dz = host(ops, dy) * (host(ops, y) > 0)
    np.testing.assert_allclose(host(ops, layer.gradients["kernel"]), host(ops, x).T @ dz, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(host(ops, layer.gradients["bias"]), dz.sum(axis=0), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(host(ops, dx), dz @ host(ops, layer.weights["kernel"]).T, rtol=1e-3, atol=1e-3)
    run(layer.backward, dy, rate=(n / 1.0, "samples/s"))
