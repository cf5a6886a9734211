"""Each operation's equations are written once: the base ``Backend``'s reference over ``xp``, at
most one Numba kernel named after it, and the NumPy backend's overrides falling back to the
reference (``super()``) instead of carrying a NumPy version of their own."""
from __future__ import annotations

import inspect
import textwrap

import pytest

from tensornet.backend import Backend, NumpyBackend
from tensornet.backend.activation_ops import ActivationOps
from tensornet.backend.array_ops import ArrayOps
from tensornet.backend.conv_ops import ConvOps
from tensornet.backend.loss_ops import LossOps
from tensornet.backend.merge_ops import MergeOps
from tensornet.backend.optimizer_ops import OptimizerOps

OPERATIONS = {name for family in (ArrayOps, ActivationOps, LossOps, OptimizerOps, MergeOps, ConvOps)
              for name, member in vars(family).items() if inspect.isfunction(member) and not name.startswith("_")}


def _numpy_overrides():
    """(name, function) of every operation NumpyBackend (or one of its mixins) overrides."""
    for name in sorted(OPERATIONS):
        method = getattr(NumpyBackend, name)
        if method is not getattr(Backend, name):
            yield name, method


def test_the_numpy_backend_overrides_something():
    assert dict(_numpy_overrides()), "NumpyBackend overrides no operation"


@pytest.mark.parametrize("name, method", list(_numpy_overrides()), ids=lambda value: getattr(value, "__name__", value))
def test_each_numpy_override_falls_back_to_the_reference(name, method):
    source = textwrap.dedent(inspect.getsource(method))
    assert f"super().{name}(" in source, (
        f"NumpyBackend.{name} never calls the reference: where its kernel does not apply it must "
        "return super()'s result, not a NumPy version of its own")


def test_the_kernels_are_named_after_the_operations():
    kernels = pytest.importorskip("tensornet.backend._numba_kernels", reason="Numba is not installed")
    names = [name for name in kernels.__all__ if name != "PARALLEL_MIN"]
    assert names
    for name in names:
        assert name in OPERATIONS or any(name.startswith(op + "_") for op in OPERATIONS), (
            f"_numba_kernels.{name} is not named after a Backend operation")
        pair = getattr(kernels, name)
        assert len(pair) == 2 and all(callable(kernel) for kernel in pair), name  # (parallel, serial)


def test_the_numpy_backend_uses_every_kernel():
    kernels = pytest.importorskip("tensornet.backend._numba_kernels", reason="Numba is not installed")
    import tensornet.backend.numpy_backend as numpy_backend
    import tensornet.backend.numpy_optimizers as numpy_optimizers

    source = inspect.getsource(numpy_backend) + inspect.getsource(numpy_optimizers)
    unused = [name for name in kernels.__all__ if name != "PARALLEL_MIN" and f"nb.{name}" not in source]
    assert not unused, f"kernels no backend method calls: {unused}"


def test_the_compiled_step_reuses_the_kernels_helpers():
    """The compiled step's element-wise arithmetic is the layered kernels' helpers, inlined."""
    pytest.importorskip("numba", reason="Numba is not installed")
    from tensornet.backend import _numba_kernels, _numba_step

    source = inspect.getsource(_numba_step)
    for helper in ("bias_relu_row", "relu_row", "bias_add_row", "bias_softmax_row", "softmax_cross_entropy_row",
                   "softmax_cross_entropy_sparse_row", "backprop_relu_slice", "sgd_update_slice",
                   "adam_update_slice"):
        assert getattr(_numba_step, helper) is getattr(_numba_kernels, helper), helper
        assert f"{helper}(" in source, helper
    for expression in ("math.exp(", "* inv_batch", "v > 0 or v != v", "* momentum", "np.sqrt(", "* beta_"):
        assert expression not in source, f"_numba_step computes {expression!r} itself"
