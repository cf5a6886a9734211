"""NumpyBackend's batch normalization and dropout product (:mod:`tensornet.backend.numpy_batch_norm`)
against Backend's reference on random non-zero inputs, in both modes: Numba's kernels (when Numba
is installed) and the pure-NumPy fallback."""
import inspect

import numpy as np
import pytest

from tensornet.backend.base import Backend
from tensornet.backend.numpy_backend import NumpyBackend

try:
    from tensornet.backend import _numba_batch_norm
except ImportError:  # the fast extra is optional
    _numba_batch_norm = None

_NO_NUMBA = pytest.mark.skipif(_numba_batch_norm is None, reason="numba not installed")
# "numba-threaded": the parallel twins at every size (PARALLEL_MIN 0), else the serial ones here
MODES = ["numpy", pytest.param("numba", marks=_NO_NUMBA), pytest.param("numba-threaded", marks=_NO_NUMBA)]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}
# (rows, features): one row, odd sizes, a partial column block, the benchmark's, many blocks
SHAPES = [(1, 1), (3, 10), (17, 65), (128, 512), (129, 515), (600, 130)]


@pytest.fixture(params=MODES)
def fast(request, monkeypatch):
    backend = NumpyBackend()
    mode = request.param.split("-")[0]
    backend._set_kernels(mode)
    assert backend.accelerator == mode
    if request.param == "numba-threaded":
        from tensornet.backend import _numba_kernels

        monkeypatch.setattr(_numba_kernels, "PARALLEL_MIN", 0)
    yield backend
    backend.finish()


@pytest.fixture
def ref():
    return Backend()


def _rand(rng, shape, dtype, scale=3.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


def _close(actual, expected, dtype):
    assert actual.dtype == dtype
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_forward_matches_reference(fast, ref, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = _rand(rng, shape, dtype, shift=1.5)
    gamma, beta = _rand(rng, shape[1], dtype), _rand(rng, shape[1], dtype)
    expected = ref.batch_norm_forward(x, gamma, beta, 1e-3)
    out, x_hat_out = np.full(shape, 7, dtype), np.full(shape, 7, dtype)
    got = fast.batch_norm_forward(x, gamma, beta, 1e-3, out=out, x_hat_out=x_hat_out)
    assert got[0] is out and got[1] is x_hat_out
    for actual, wanted in zip(got, expected):  # the reference's order of operations: to the bit
        assert actual.dtype == dtype
        np.testing.assert_array_equal(actual, wanted)
    for actual, wanted in zip(fast.batch_norm_forward(x, gamma, beta, 1e-3), expected):  # its own buffers
        np.testing.assert_array_equal(actual, wanted)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_backward_matches_reference(fast, ref, shape, dtype):
    rng = np.random.default_rng(sum(shape) + 1)
    x_hat, dy = _rand(rng, shape, dtype, scale=1.0), _rand(rng, shape, dtype, shift=0.5)
    inv_std, gamma = (np.abs(_rand(rng, shape[1], dtype)) + 0.1).astype(dtype), _rand(rng, shape[1], dtype)
    expected = ref.batch_norm_backward(dy, x_hat, inv_std, gamma)
    outs = np.full(shape, 7, dtype), np.full(shape[1], 7, dtype), np.full(shape[1], 7, dtype)
    got = fast.batch_norm_backward(dy, x_hat, inv_std, gamma, dx_out=outs[0], dgamma_out=outs[1], dbeta_out=outs[2])
    assert all(a is b for a, b in zip(got, outs))
    for actual, wanted in zip(got, expected):  # the reference's order of operations: to the bit
        assert actual.dtype == dtype
        np.testing.assert_array_equal(actual, wanted)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_without_gamma_or_beta_and_odd_layouts_take_the_reference(fast, ref, dtype):
    rng = np.random.default_rng(5)
    x = _rand(rng, (20, 9), dtype)
    gamma = _rand(rng, 9, dtype)
    for g, b in ((None, None), (gamma, None), (None, gamma)):
        for actual, wanted in zip(fast.batch_norm_forward(x, g, b, 1e-3), ref.batch_norm_forward(x, g, b, 1e-3)):
            _close(actual, wanted, dtype)
    strided = np.asfortranarray(x)
    for actual, wanted in zip(fast.batch_norm_forward(strided, gamma, gamma, 1e-3),
                              ref.batch_norm_forward(x, gamma, gamma, 1e-3)):
        _close(actual, wanted, dtype)
    x_hat, inv_std = ref.batch_norm_forward(x, gamma, gamma, 1e-3)[1:3]
    for actual, wanted in zip(fast.batch_norm_backward(x, x_hat, inv_std, None),
                              ref.batch_norm_backward(x, x_hat, inv_std, None)):
        _close(actual, wanted, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape", [(0, 5), (1,), (3, 11), (128, 512), (129, 515)])
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_forward_matches_reference_with_the_same_draws(fast, ref, shape, dtype, rate):
    x = _rand(np.random.default_rng(3), shape, dtype)
    ref_rng, rng = np.random.default_rng(21), np.random.default_rng(21)
    y_ref, mask_ref = ref.dropout_forward(x, ref_rng, rate)
    mask_out, out = np.full(shape, 7, dtype), np.full(shape, 7, dtype)
    y, mask = fast.dropout_forward(x, rng, rate, mask_out=mask_out, out=out)
    assert y is out and mask is mask_out and y.dtype == dtype
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(mask, ref.dropout_mask(np.random.default_rng(21), shape, rate, dtype))
    assert rng.bit_generator.state == ref_rng.bit_generator.state  # advanced as the reference's draw
    y, mask = fast.dropout_forward(x, np.random.default_rng(21), rate)  # its own buffers
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(y, y_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 2, 7, 64, 65, 1000])
@pytest.mark.parametrize("held", [0, 1, 2])
def test_dropout_forward_draws_as_the_generator_after_any_history(fast, ref, dtype, size, held):
    """``held`` float32 draws first (an odd count leaves PCG64 holding half a word), then two
    dropout calls: the same masks as the reference and, after them, the same generator state."""
    x = _rand(np.random.default_rng(9), (size,), dtype)
    rng, ref_rng = np.random.default_rng(13), np.random.default_rng(13)
    for generator in (rng, ref_rng):
        generator.random(held, dtype=np.float32)
    for _ in range(2):
        y, mask = fast.dropout_forward(x, rng, 0.25)
        y_ref, mask_ref = ref.dropout_forward(x, ref_rng, 0.25)
        np.testing.assert_array_equal(mask, mask_ref)
        np.testing.assert_array_equal(y, y_ref)
        assert rng.bit_generator.state == ref_rng.bit_generator.state
    assert rng.random(3, dtype=np.float32).tolist() == ref_rng.random(3, dtype=np.float32).tolist()


def test_dropout_forward_with_another_bit_generator_takes_the_reference(fast, ref):
    x = _rand(np.random.default_rng(4), (9, 13), np.float32)
    y, mask = fast.dropout_forward(x, np.random.Generator(np.random.MT19937(5)), 0.4)
    y_ref, mask_ref = ref.dropout_forward(x, np.random.Generator(np.random.MT19937(5)), 0.4)
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_dropout_forward_into_a_strided_buffer(fast, ref):
    x = _rand(np.random.default_rng(4), (6, 10), np.float32)
    wide = np.zeros((6, 20), np.float32)
    y, mask = fast.dropout_forward(x, np.random.default_rng(2), 0.3, mask_out=wide[:, ::2])
    y_ref, mask_ref = ref.dropout_forward(x, np.random.default_rng(2), 0.3)
    np.testing.assert_array_equal(wide[:, ::2], mask_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_overrides_keep_base_signatures():
    from tensornet.backend.numpy_batch_norm import NumpyBatchNormOps

    for name, member in vars(NumpyBatchNormOps).items():
        if callable(member) and not name.startswith("_"):
            assert inspect.signature(member) == inspect.signature(getattr(Backend, name)), name


def test_the_kernels_are_named_after_the_operations_and_used():
    if _numba_batch_norm is None:
        pytest.skip("numba not installed")
    import tensornet.backend.numpy_batch_norm as module

    source = inspect.getsource(module)
    for name in _numba_batch_norm.__all__:
        assert hasattr(Backend, name), name
        assert f"bn.{name}" in source, name
        assert len(getattr(_numba_batch_norm, name)) == 2


def test_the_mixin_overrides_backend_methods_only_and_comes_before_the_base():
    from tensornet.backend.numpy_batch_norm import NumpyBatchNormOps

    public = {name for name, member in vars(NumpyBatchNormOps).items() if callable(member) and not name.startswith("_")}
    assert public == {"batch_norm_forward", "batch_norm_backward", "dropout_forward"}
    mro = NumpyBackend.__mro__
    assert mro.index(NumpyBatchNormOps) < mro.index(Backend)
    assert all(getattr(NumpyBackend, name) is getattr(NumpyBatchNormOps, name) for name in public)
