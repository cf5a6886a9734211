"""Activations: forward values against closed forms, backward against finite differences.

Every backward (``backprop_<name>``) takes the activation's *output* y; the check is on
L(x) = sum(r * f(x)) for a fixed random r, whose gradient is backprop(dy=r, y=f(x)).
"""
import warnings

import numpy as np
import pytest

from helpers import away_from_zero, check_gradient, numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

import tensornet as tn
from tensornet import activations

ops = numpy_ops()


def closed_form(name, x, alpha=0.01):
    if name == "linear":
        return x.copy()
    if name == "step":
        return (x >= 0).astype(x.dtype)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.where(x > 0, x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, alpha * x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise AssertionError(name)


CASES = [("linear", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("relu", 0.0), ("leaky_relu", 0.01),
         ("leaky_relu", 0.3), ("softmax", 0.0), ("step", 0.0)]


def act(name, alpha):
    return activations.LeakyReLU(alpha) if name == "leaky_relu" else activations.get(name)


# ---------------------------------------------------------------------------- forward values
@pytest.mark.parametrize("name,alpha", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_matches_closed_form(name, alpha, dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((7, 5)) * 3).astype(dtype)
    y = act(name, alpha).forward(ops, x.copy())
    expected = closed_form(name, x.astype(np.float64), alpha)
    assert y.dtype == np.dtype(dtype)
    tol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("name,alpha", CASES)
def test_forward_in_place_and_out(name, alpha):
    """``out=x`` (in place, as the fused bias+activation uses it) and a separate ``out=``
    give the same numbers as a fresh result."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6))
    fresh = act(name, alpha).forward(ops, x.copy())
    buffer = np.empty_like(x)
    via_out = act(name, alpha).forward(ops, x.copy(), out=buffer)
    assert via_out is buffer
    inplace_input = x.copy()
    in_place = act(name, alpha).forward(ops, inplace_input, out=inplace_input)
    np.testing.assert_allclose(via_out, fresh, rtol=0, atol=1e-15)
    np.testing.assert_allclose(in_place, fresh, rtol=0, atol=1e-15)


def test_sigmoid_no_overflow_at_plus_minus_1000():
    for dtype in ("float32", "float64"):
        x = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                y = activations.sigmoid.forward(ops, x)
        assert np.all(np.isfinite(y))
        assert y[0] == 0.0 and y[-1] == 1.0
        assert y[3] == 0.5
        np.testing.assert_allclose(y, 0.5 * (1 + np.tanh(x.astype(np.float64) / 2)), atol=1e-7)
        assert np.all(np.diff(y) >= 0)


def test_sigmoid_symmetry():
    x = np.linspace(-20, 20, 81)
    y = activations.sigmoid.forward(ops, x.copy())
    np.testing.assert_allclose(y + y[::-1], 1.0, atol=1e-15)


def test_softmax_rows_sum_to_one_and_stable_for_large_logits():
    rng = np.random.default_rng(2)
    for dtype in ("float32", "float64"):
        x = (rng.standard_normal((10, 6)) * 5).astype(dtype)
        x[0] += 1000.0  # huge but equal shift: same probabilities
        x[1, 2] = 1e4   # one dominant logit
        x[2] = -1e4
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = activations.softmax.forward(ops, x.copy())
        assert np.all(np.isfinite(y))
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=0, atol=1e-6 if dtype == "float32" else 1e-14)
        np.testing.assert_allclose(y[0], closed_form("softmax", x[0].astype(np.float64) - 1000.0),
                                   atol=1e-6 if dtype == "float32" else 1e-13)
        np.testing.assert_allclose(y[1], np.eye(6)[2], atol=1e-30)
        np.testing.assert_allclose(y[2], np.full(6, 1 / 6), atol=1e-6)


def test_softmax_is_over_last_axis_and_shift_invariant():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 5))
    y = activations.softmax.forward(ops, x.copy())
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-14)
    shifted = activations.softmax.forward(ops, x + rng.standard_normal((3, 4, 1)) * 50)
    np.testing.assert_allclose(shifted, y, atol=1e-13)


def test_step_values_and_heaviside_alias():
    x = np.array([-2.0, -1e-9, 0.0, 1e-9, 3.0])
    np.testing.assert_array_equal(activations.step.forward(ops, x), [0, 0, 1, 1, 1])
    assert activations.get("heaviside") is activations.step
    np.testing.assert_array_equal(activations.get("heaviside").forward(ops, x), [0, 0, 1, 1, 1])


def test_leaky_relu_default_alpha_and_validation():
    assert activations.get("leaky_relu").alpha == 0.01
    x = np.array([-100.0, -1.0, 0.5])
    np.testing.assert_allclose(activations.get("leaky_relu").forward(ops, x), [-1.0, -0.01, 0.5])
    np.testing.assert_allclose(activations.LeakyReLU(0.3).forward(ops, x), [-30.0, -0.3, 0.5])
    for bad in (-0.1, 1.0, 2, "0.1", True):
        with pytest.raises(ValueError, match="alpha"):
            activations.LeakyReLU(bad)


def test_callable_activation_uses_current_backend():
    with tn.use_backend("numpy"):
        y = activations.tanh(np.array([[0.0, 1.0, -2.0]]))
    np.testing.assert_allclose(y, np.tanh([[0.0, 1.0, -2.0]]), rtol=1e-6)


def test_get_resolves_names_objects_and_none():
    assert activations.get(None) is activations.linear
    assert activations.get("ReLU") is activations.relu
    custom = activations.LeakyReLU(0.2)
    assert activations.get(custom) is custom
    assert activations.from_config(custom.get_config()) == custom
    for name in activations.NAMES:
        a = activations.get(name)
        assert activations.from_config(a.get_config()) == a


# ---------------------------------------------------------------------------- backward
def _inputs(name, rng, shape=(5, 4)):
    if name in ("relu", "leaky_relu", "step"):
        return away_from_zero(rng, shape, low=1e-3, high=3.0)  # keep clear of the kink
    return rng.uniform(-4.0, 4.0, size=shape)


@pytest.mark.parametrize("name,alpha", CASES)
def test_backward_matches_finite_differences(name, alpha):
    rng = np.random.default_rng(10)
    f = act(name, alpha)
    x = _inputs(name, rng)
    r = rng.standard_normal(x.shape)  # L = sum(r * f(x)), dL/dy = r

    def loss():
        return np.sum(r * f.forward(ops, x.copy()))

    y = f.forward(ops, x.copy())
    analytic = f.backward(ops, r.copy(), y)
    numeric = check_gradient(loss, x, analytic, what=f"d/dx {name}(alpha={alpha})")
    if name == "step":
        assert np.all(analytic == 0) and np.all(numeric == 0)


@pytest.mark.parametrize("name,alpha", CASES)
def test_backward_closed_form_from_output(name, alpha):
    """The derivative formulas of the docstring, evaluated from y."""
    rng = np.random.default_rng(11)
    x = _inputs(name, rng)
    dy = rng.standard_normal(x.shape)
    y = closed_form(name, x, alpha)
    expected = {
        "linear": dy,
        "step": np.zeros_like(dy),
        "sigmoid": dy * y * (1 - y),
        "tanh": dy * (1 - y * y),
        "relu": dy * (x > 0),
        "leaky_relu": dy * np.where(x > 0, 1.0, alpha),
        "softmax": y * (dy - np.sum(dy * y, axis=-1, keepdims=True)),
    }[name]
    got = ops.backprop_activation(name, dy.copy(), y, alpha=alpha)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
    out = np.empty_like(dy)
    got_out = ops.backprop_activation(name, dy.copy(), y, out=out, alpha=alpha)
    assert got_out is out
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-15)


def test_softmax_backward_is_full_jacobian_vector_product():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 5))
    dy = rng.standard_normal((3, 5))
    y = closed_form("softmax", x)
    got = activations.softmax.backward(ops, dy, y)
    for i in range(3):
        jac = np.diag(y[i]) - np.outer(y[i], y[i])
        np.testing.assert_allclose(got[i], jac.T @ dy[i], atol=1e-14)


def test_leaky_relu_backward_float32_keeps_dtype():
    x = np.array([[-1.0, 2.0]], dtype=np.float32)
    y = activations.LeakyReLU(0.3).forward(ops, x.copy())
    dx = activations.LeakyReLU(0.3).backward(ops, np.ones_like(x), y)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, [[0.3, 1.0]], rtol=1e-7)
