"""Every backend keeps the reference signatures of :class:`tensornet.backend.Backend`.

Layers, losses and optimizers call backend methods by keyword and position; a subclass that
renamed a parameter, dropped a default or added a public method of its own would work on one
device and break on the other. Checked for ``NumpyBackend`` always, for ``CupyBackend`` as
imported normally when CuPy imports, and for ``CupyBackend`` loaded by file with a stand-in
``cupy`` module (so the check also runs where CuPy is not installed). The operation families
are mixins (``ArrayOps``, ``ActivationOps``, ``LossOps``, ``OptimizerOps`` composed into
``Backend``; ``NumpyOptimizerOps``, ``CupyOptimizerOps`` into the device backends): each
family defines its methods once, and a device mixin only overrides base methods.
"""
from __future__ import annotations

import inspect

import pytest

from tensornet.backend import Backend, NumpyBackend
from tensornet.backend.activation_ops import ActivationOps
from tensornet.backend.array_ops import ArrayOps
from tensornet.backend.conv_ops import ConvOps
from tensornet.backend.cupy_optimizers import CupyOptimizerOps
from tensornet.backend.loss_ops import LossOps
from tensornet.backend.merge_ops import MergeOps
from tensornet.backend.numpy_optimizers import NumpyOptimizerOps
from tensornet.backend.optimizer_ops import OptimizerOps

BASE_FAMILIES = [ArrayOps, ActivationOps, LossOps, OptimizerOps, MergeOps, ConvOps]


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
    fused = ["to_numpy", "to_float", "is_array", "synchronize", "device_info",
             "matmul", "bias_activation", "backprop_relu", "backprop_leaky_relu",
             "backprop_sigmoid", "backprop_tanh", "softmax_cross_entropy", "sgd_update",
             "rmsprop_update", "adagrad_update", "adadelta_update", "adam_update",
             "adamax_update", "nadam_update"]
    inherited = [name for name in fused if getattr(cls, name) is getattr(Backend, name)]
    assert not inherited, f"CupyBackend does not override {inherited}"


def _own_methods(cls):
    """The functions ``cls`` itself defines (not inherited), public and private, by name."""
    return {name for name, member in vars(cls).items() if inspect.isfunction(member)}


def test_backend_is_composed_of_the_operation_families():
    assert Backend.__mro__[1:1 + len(BASE_FAMILIES)] == tuple(BASE_FAMILIES)
    for family in BASE_FAMILIES:
        assert _own_methods(family), f"{family.__name__} defines no operation"


def test_each_operation_is_defined_in_one_family_only():
    """Two families defining the same name would let the first in the MRO silently shadow the other."""
    owners = {}
    for cls in [Backend, *BASE_FAMILIES]:
        for name in _own_methods(cls):
            owners.setdefault(name, []).append(cls.__name__)
    shared = {name: classes for name, classes in owners.items() if len(classes) > 1}
    assert not shared, shared


@pytest.mark.parametrize("mixin, backend", [(NumpyOptimizerOps, "numpy"), (CupyOptimizerOps, "cupy")])
def test_device_mixins_only_override_base_methods_with_their_signatures(mixin, backend):
    base = _public_methods(Backend)
    methods = _public_methods(mixin)
    assert methods, f"{mixin.__name__} overrides nothing"
    for name, method in methods.items():
        assert name in base, f"{mixin.__name__}.{name} is not a Backend method"
        assert inspect.signature(method) == inspect.signature(base[name]), name
    assert set(methods) == {name for name in base if name.endswith("_update")}


def test_device_backends_put_their_mixins_before_the_base(stub_cupy_backend_module):
    for cls, mixin in ((NumpyBackend, NumpyOptimizerOps), (stub_cupy_backend_module.CupyBackend, CupyOptimizerOps)):
        mro = cls.__mro__
        assert mro.index(mixin) < mro.index(Backend), cls.__name__
        assert all(getattr(cls, name) is getattr(mixin, name) for name in _public_methods(mixin))
