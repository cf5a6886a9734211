"""Shared test helpers: a central finite-difference gradient checker and a fake parameter store.

Gradient checks run in float64 with central differences,

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),    eps = 1e-6,

whose truncation error is O(eps^2 f''') ~ 1e-12 and whose rounding error is about
1e-16 |f| / eps ~ 1e-10 |f|; a relative error of 1e-6 therefore leaves a wide margin for a
correct analytic gradient while any real mistake (a missing factor, a wrong sign, a dropped
term) is off by O(1).
"""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from tensornet.backend import get_backend, use_backend

EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-9


@pytest.fixture(autouse=True)
def numpy_backend():
    """Pin every test of a module that imports this fixture to the NumPy backend, so models
    and layers built with the default backend hold NumPy arrays even on a GPU machine where
    ``auto`` would pick CuPy. (Import it into a test module to activate it.)"""
    with use_backend("numpy") as ops:
        yield ops


def numpy_ops():
    """The NumPy backend (every numeric test runs on it)."""
    return get_backend("numpy")


def numerical_gradient(f, x, eps=EPS):
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``.

    ``x`` is perturbed in place, one element at a time, and restored exactly afterwards, so it
    can be a view into a model's flat parameter buffer. ``f`` takes no arguments and must read
    ``x`` (directly or through the object holding it) every time it is called.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks run in float64; got {x.dtype}")
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(*x.shape):
        old = x[index]
        x[index] = old + eps
        f_plus = float(f())
        x[index] = old - eps
        f_minus = float(f())
        x[index] = old
        grad[index] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def relative_error(analytic, numeric):
    """||a - n|| / max(||a|| + ||n||, tiny): the size-independent gradient-check statistic."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    denom = max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-30)
    return float(np.linalg.norm(analytic - numeric) / denom)


def assert_gradient_close(analytic, numeric, rtol=RTOL, atol=ATOL, what="gradient"):
    """Element-wise |a - n| <= atol + rtol |n| and a small overall relative error."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    assert analytic.shape == numeric.shape, f"{what}: shape {analytic.shape} != {numeric.shape}"
    assert np.all(np.isfinite(analytic)), f"{what}: analytic gradient is not finite"
    rel = relative_error(analytic, numeric)
    worst = np.max(np.abs(analytic - numeric)) if analytic.size else 0.0
    np.testing.assert_allclose(
        analytic, numeric, rtol=rtol, atol=atol,
        err_msg=f"{what}: analytic vs finite differences (relative error {rel:.3e}, max abs {worst:.3e})")
    if np.linalg.norm(numeric) > 1e-6:
        assert rel < 10 * rtol, f"{what}: relative error {rel:.3e}"


def check_gradient(f, x, analytic, eps=EPS, rtol=RTOL, atol=ATOL, what="gradient"):
    """Compare ``analytic`` with the central-difference gradient of ``f()`` w.r.t. ``x``."""
    numeric = numerical_gradient(f, x, eps=eps)
    assert_gradient_close(analytic, numeric, rtol=rtol, atol=atol, what=what)
    return numeric


def away_from_zero(rng, shape, low=1e-3, high=2.0):
    """Random values with low <= |x| <= high and random signs (to avoid relu kinks)."""
    magnitude = rng.uniform(low, high, size=shape)
    return magnitude * rng.choice([-1.0, 1.0], size=shape)


class FakeStore:
    """A stand-in for :class:`tensornet.nn.parameters.ParameterStore`: ``ops``, ``groups`` mapping a
    dtype name to flat ``(params, grads)`` buffers, and ``views()`` yielding
    ``(layer, name, weight view, gradient view)`` for slices of them."""

    def __init__(self, params, grads, splits=None, ops=None):
        self.ops = ops or numpy_ops()
        params = np.asarray(params)
        self.groups = {params.dtype.name: (params, np.asarray(grads))}
        self.splits = list(splits) if splits is not None else [params.size]

    def views(self):
        params, grads = next(iter(self.groups.values()))
        start = 0
        for i, stop in enumerate(self.splits):
            yield None, f"w{i}", params[start:stop], grads[start:stop]
            start = stop

    @property
    def params(self):
        return next(iter(self.groups.values()))[0]

    @property
    def grads(self):
        return next(iter(self.groups.values()))[1]


def model_batch_loss(model, x, y):
    """The batch-mean loss the model reports: from the logits when the output is fused."""
    ops = model.ops
    pred = model.forward(x, training=True)
    if model.fused_output:
        total = model.loss.fused_total(ops, model.layers[-1].logits, y)
    else:
        total = model.loss.total(ops, pred, y)
    return float(total) / x.shape[0]


def model_analytic_gradient(model, x, y):
    """The layered step's order, written out: forward, loss gradient (fused: w.r.t. the logits),
    backward; returns a copy of the flat gradient buffer."""
    ops = model.ops
    pred = model.forward(x, training=True)
    grad = np.empty_like(pred)
    if model.fused_output:
        model.loss.fused(ops, model.layers[-1].logits, pred, y, grad)
    else:
        model.loss.gradient(ops, pred, y, out=grad)
    model.backward(grad, through_activation=not model.fused_output)
    return model.store.groups[model.dtype][1].copy()


def three_class_data(n, seed=0):
    """``n`` examples of 8 standard-normal float32 features, with integer labels in 0..2."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8)).astype("float32"), rng.integers(0, 3, size=n)


def stateful_classifier(optimizer, dropout, seed, backend=None):
    """Dense(16, relu) - BatchNormalization - Dropout(``dropout``) - Dense(3, softmax) on 8
    features, compiled for integer labels with accuracy: a small model holding every kind of
    state a resume or a rollback must restore (weights, batch statistics, a dropout generator,
    optimizer buffers)."""
    from tensornet import Sequential
    from tensornet.layers import BatchNormalization, Dense, Dropout

    model = Sequential([Dense(16, activation="relu", input_shape=(8,)), BatchNormalization(), Dropout(dropout),
                        Dense(3, activation="softmax")], seed=seed)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"], backend=backend)
    return model


def isolate_dataset_environment(tmp_path, monkeypatch):
    """No real cache, data directory, download URL or proxy leaks into a dataset test."""
    from tensornet.datasets import cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(cache.DATA_ENV, raising=False)
    monkeypatch.delenv(cache.URL_ENV, raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")


def write_tiny_dataset(directory, n_train=240, n_test=60, seed=0):
    """A tiny Fashion-MNIST-shaped data set (gzip IDX files) whose classes are learnable."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, label * 2:label * 2 + 3, :] = 250
        (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes()))
        (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 0x801, n) + labels.tobytes()))
    return directory
