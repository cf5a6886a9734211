"""Every backend keeps the reference signatures of :class:`tensornet.backend.Backend`.

Layers, losses and optimizers call backend methods by keyword and position; a subclass that
renamed a parameter, dropped a default or added a public method of its own would work on one
device and break on the other. Checked for ``NumpyBackend`` always, for ``CupyBackend`` as
imported normally when CuPy imports, and for ``CupyBackend`` loaded by file with a stand-in
``cupy`` module (so the check also runs where CuPy is not installed).
"""
from __future__ import annotations

import inspect

import pytest

from tensornet.backend import Backend, NumpyBackend


def _public_methods(cls):
    return {name: member for name, member in inspect.getmembers(cls)
            if not name.startswith("_") and callable(member) and not inspect.isclass(member)}


def _cupy_backend_class():
    pytest.importorskip("cupy", reason="CuPy is not installed")
    from tensornet.backend.cupy_backend import CupyBackend

    return CupyBackend


@pytest.fixture(params=["numpy", "cupy", "cupy-by-file"])
def backend_class(request):
    if request.param == "numpy":
        return NumpyBackend
    if request.param == "cupy":
        return _cupy_backend_class()
    return request.getfixturevalue("stub_cupy_backend_module").CupyBackend


def test_is_a_backend(backend_class):
    assert issubclass(backend_class, Backend)
    assert backend_class.name in ("numpy", "cupy")


def test_every_public_method_keeps_the_base_signature(backend_class):
    base = _public_methods(Backend)
    mismatched = {}
    for name, method in _public_methods(backend_class).items():
        if name not in base:
            continue
        expected, actual = inspect.signature(base[name]), inspect.signature(method)
        if actual != expected:
            mismatched[name] = f"{actual} != base {expected}"
    assert not mismatched, mismatched


def test_no_public_method_beyond_the_base(backend_class):
    extra = sorted(set(_public_methods(backend_class)) - set(_public_methods(Backend)))
    assert not extra, f"{backend_class.__name__} adds public methods the base lacks: {extra}"


def test_cupy_overrides_are_documented(backend_class):
    if backend_class.name != "cupy":
        pytest.skip("checked for CupyBackend only")
    for name, method in _public_methods(backend_class).items():
        if method is not getattr(Backend, name, None):
            assert method.__doc__, f"{backend_class.__name__}.{name} has no docstring"


def test_cupy_backend_overrides_the_fused_operations(stub_cupy_backend_module):
    cls = stub_cupy_backend_module.CupyBackend
    fused = ["to_numpy", "to_float", "is_array", "synchronize", "device_info", "permutation",
             "matmul", "bias_activation", "backprop_relu", "backprop_leaky_relu",
             "backprop_sigmoid", "backprop_tanh", "softmax_cross_entropy", "sgd_update",
             "rmsprop_update", "adagrad_update", "adadelta_update", "adam_update",
             "adamax_update", "nadam_update"]
    inherited = [name for name in fused if name not in vars(cls)]
    assert not inherited, f"CupyBackend does not override {inherited}"
