"""Weights to and from PyTorch (and JAX when installed) through DLPack, with no copies."""
from __future__ import annotations

import numpy as np
import pytest

from tensornet import interop
from tensornet.layers import Dense
from tensornet.models import Sequential

torch = pytest.importorskip("torch")


def make_model(seed=0, dtype=None):
    model = Sequential([Dense(5, activation="relu", input_shape=(4,)), Dense(3)], seed=seed, dtype=dtype)
    model.build()
    return model


def test_export_to_torch_shares_memory():
    model = make_model()
    tensors = interop.to_torch(model)
    weights = model.get_weights()
    assert [tuple(t.shape) for t in tensors] == [w.shape for w in weights]
    for tensor, (_, _, view, _) in zip(tensors, model.store.views()):
        assert tensor.data_ptr() == view.ctypes.data  # the same memory: no copy
    for tensor, weight in zip(tensors, weights):
        assert np.array_equal(tensor.numpy(), weight)
    with torch.no_grad():
        tensors[0][0, 0] = 42.0  # an edit in torch is an edit of the model
    assert model.get_weights()[0][0, 0] == 42.0
    model.layers[1].weights["bias"][...] = 7.0  # and the other way round
    assert torch.all(tensors[3] == 7.0)


def test_torch_module_runs_on_exported_weights():
    model = make_model()
    kernel1, bias1, kernel2, bias2 = interop.to_torch(model)
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    out = torch.relu(torch.from_numpy(x) @ kernel1 + bias1) @ kernel2 + bias2
    np.testing.assert_allclose(out.numpy(), model.predict(x), rtol=1e-6, atol=1e-6)


def test_flat_buffer_export():
    model = make_model()
    flat = interop.flat_to_torch(model)
    params, _ = model.store.groups["float32"]
    assert flat.ndim == 1 and flat.numel() == params.size and flat.data_ptr() == params.ctypes.data


def test_import_from_torch():
    source, target = make_model(seed=1), make_model(seed=2)
    tensors = [torch.from_numpy(w) for w in source.get_weights()]
    interop.from_torch(target, tensors)
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), target.get_weights()))
    grad_tensors = [t.clone().requires_grad_(True) for t in tensors]  # parameters with autograd
    interop.from_torch(target, grad_tensors)
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), target.get_weights()))


def test_import_wraps_without_copying():
    tensor = torch.arange(6, dtype=torch.float32)
    wrapped = np.from_dlpack(tensor)
    assert wrapped.ctypes.data == tensor.data_ptr()


def test_import_checks_count_shape_and_dtype():
    model = make_model()
    tensors = interop.to_torch(make_model(seed=3))
    with pytest.raises(ValueError, match="expected 4 tensors"):
        interop.from_torch(model, tensors[:3])
    with pytest.raises(ValueError, match="shape"):
        interop.from_torch(model, [tensors[0].T, *tensors[1:]])
    with pytest.raises(TypeError, match="dtype"):
        interop.from_torch(model, [tensors[0].double(), *tensors[1:]])
    before = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # nothing half-written


def test_float64_round_trip():
    model = make_model(dtype="float64")
    tensors = interop.to_torch(model)
    assert tensors[0].dtype == torch.float64


def test_jax_round_trip():
    jax = pytest.importorskip("jax")
    model = make_model()
    arrays = interop.to_jax(model)
    assert all(np.array_equal(np.asarray(a), w) for a, w in zip(arrays, model.get_weights()))
    other = make_model(seed=5)
    interop.from_jax(other, arrays)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))
    assert jax is not None
