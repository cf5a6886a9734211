"""``fit`` through the CuPy backend's own code, without a GPU: the backend module runs on a NumPy
stand-in for CuPy and its launcher seam (``CupyBackend._kernel``) fetches the host harness's
build of ``kernels/*.cu`` (``tests/cuda_harness/backend.py``). Dispatch, argument packing, grid
sizes and kernel name expressions are the GPU's; the results must match the NumPy backend to
float32 tolerance, a training step must make no implicit device synchronisation, and the
output layer's forward pass must be one fused launch after the product. (Every kernel name
expression against the reference through the same seam: tests/test_backend_cupy_every_kernel.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from tensornet import Sequential
from tensornet.backend import Backend
from tensornet.callbacks import Callback
from tensornet.layers import Dense, Dropout
from tensornet.optimizers import SGD, Adam

from tests.cuda_harness import host_cupy
from tests.cuda_harness.backend import harness_backend

pytestmark = pytest.mark.kernels_on_cpu

FEATURES, CLASSES, ROWS, BATCH = 13, 5, 75, 16  # a last partial batch of 11 rows


def data(one_hot=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((ROWS, FEATURES)).astype(np.float32)
    labels = rng.integers(0, CLASSES, ROWS)
    return x, (np.eye(CLASSES, dtype=np.float32)[labels] if one_hot else labels)


def mlp(backend, optimizer, loss="sparse_categorical_crossentropy", dropout=0.0):
    model = Sequential(seed=7)
    model.add(Dense(17, activation="relu", input_shape=(FEATURES,)))
    if dropout:
        model.add(Dropout(dropout))
    model.add(Dense(9, activation="tanh"))
    model.add(Dense(CLASSES, activation="softmax"))
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], backend=backend, jit_compile=False)
    return model


OPTIMIZERS = {
    "sgd_momentum": lambda: SGD(0.05, momentum=0.9),
    "sgd_nesterov": lambda: SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(3e-3),
}


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fit_through_the_cupy_backend_matches_the_numpy_backend(optimizer, loss):
    x, y = data(one_hot=loss == "categorical_crossentropy")
    backend = harness_backend()
    on_harness = mlp(backend, OPTIMIZERS[optimizer](), loss)
    reference = mlp("numpy", OPTIMIZERS[optimizer](), loss)
    history = on_harness.fit(x, y, batch_size=BATCH, epochs=3, verbose=0)
    expected = reference.fit(x, y, batch_size=BATCH, epochs=3, verbose=0)
    assert on_harness.ops is backend and on_harness.optimizer.iterations == 3 * -(-ROWS // BATCH)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history.history[key], expected.history[key], rtol=2e-5, err_msg=key)
    for got, want in zip(on_harness.get_weights(), reference.get_weights()):
        assert isinstance(got, np.ndarray) and not isinstance(got, host_cupy.DeviceArray)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(on_harness.predict(x, verbose=0), reference.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-6)
    # The fused kernels ran, with the names the backend builds: nothing fell back unnoticed.
    launched = set(backend.launches)
    update = "adam_update<float>" if optimizer == "adam" else "sgd_update<float>"
    sparse = loss.startswith("sparse")
    softmax = "sparse_softmax_cross_entropy<float, long long>" if sparse else "softmax_cross_entropy<float>"
    for name in ("bias_activation<float, Relu>", "bias_activation<float, Tanh>",
                 "activation_backward<float, Relu>", "activation_backward<float, Tanh>", update, softmax):
        assert name in launched, (name, sorted(launched))


class SyncsPerBatch(Callback):
    """Records how many implicit syncs each training batch's step made."""

    def __init__(self):
        super().__init__()
        self.per_batch = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = list(host_cupy.syncs)

    def on_train_batch_end(self, batch, logs=None):
        self.per_batch.append(host_cupy.syncs[len(self._start):])


def _fit_counting_syncs(rows, monkeypatch):
    monkeypatch.setattr("tensornet.training.divergence.CHECK_SECONDS", 1e9)  # checks at epoch ends only
    x, y = data()
    x, y = np.resize(x, (rows, FEATURES)), np.resize(y, rows)
    model = mlp(harness_backend(), Adam(1e-3), dropout=0.25)
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)  # build, compile kernels
    watch = SyncsPerBatch()
    del host_cupy.syncs[:]
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[watch])
    return watch.per_batch, list(host_cupy.syncs)


def test_a_training_step_makes_no_implicit_device_sync(monkeypatch):
    per_batch, total = _fit_counting_syncs(10 * BATCH + 3, monkeypatch)
    assert len(per_batch) == 2 * 11
    assert all(not syncs for syncs in per_batch), [s for s in per_batch if s]
    # The whole fit reads the device a fixed number of times, however many steps an epoch has.
    _, shorter = _fit_counting_syncs(3 * BATCH, monkeypatch)
    assert len(total) == len(shorter), (total, shorter)
    assert total, "the stand-in records no sync at all: the counting itself is broken"


def test_the_stand_in_records_each_kind_of_implicit_sync():
    backend = harness_backend()
    x = backend.to_device(np.arange(6, dtype=np.float32).reshape(2, 3))
    del host_cupy.syncs[:]
    total = x.sum()
    assert isinstance(total, host_cupy.DeviceArray) and total.ndim == 0  # CuPy: a 0-d array, not a scalar
    float(total), int(x[0, 1]), bool(x[1, 2]), total.item(), backend.to_numpy(x), x.tolist()
    pinned = backend.host_buffer((2, 3))
    backend.to_device(pinned, out=x)  # page-locked: asynchronous, not a sync
    backend.to_device(np.ones((2, 3), np.float32), out=x)  # pageable: a sync
    kinds = [kind for kind, _ in host_cupy.syncs]
    assert kinds == ["float()", "int()", "bool()", ".item()", "cupy.asnumpy", ".tolist()",
                     "pageable host-to-device copy (.set)"], kinds
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        x + np.ones(3, np.float32)  # CuPy refuses host arrays in device operations


def _output_layer_launches(backend, x):
    """Launches of the output layer's forward pass: CuPy's own kernels (and the cuBLAS product)
    plus the backend's fused kernels counted at the seam; and its output on the host."""
    model = mlp(backend, "sgd")
    model.build((FEATURES,))
    layer = model.layers[-1]
    inputs = backend.to_device(x)
    layer.forward(inputs, training=True)  # allocate the layer's workspaces first
    del host_cupy.operations[:], backend.launches[:]
    y = layer.forward(inputs, training=True)
    return list(host_cupy.operations) + list(backend.launches), np.array(y.view(np.ndarray))


def test_the_output_layer_forward_is_one_fused_launch_after_the_product():
    x = np.random.default_rng(4).standard_normal((33, 9)).astype(np.float32)
    fused, probs = _output_layer_launches(harness_backend(), x)
    assert fused == ["matmul", "bias_activation_softmax<float>"], fused
    reference = harness_backend()
    reference.bias_activation = lambda *a, **k: Backend.bias_activation(reference, *a, **k)
    unfused, expected = _output_layer_launches(reference, x)
    assert unfused == ["matmul", "add", "max", "subtract", "exp", "sum", "divide"], unfused
    np.testing.assert_allclose(probs, expected, rtol=8 * np.finfo(np.float32).eps, atol=0)
