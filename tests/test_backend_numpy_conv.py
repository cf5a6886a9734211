"""NumpyBackend's convolution and pooling (:mod:`tensornet.backend.numpy_conv`: Numba's im2col, col2im,
max and average pooling, and the conv bias gradient) against Backend's reference, on random, never
zero inputs of awkward sizes, both twins of each kernel (parallel and serial), float32 and float64;
and a whole convolutional training run through both backends."""
import inspect

import numpy as np
import pytest

from tensornet.backend.base import Backend
from tensornet.backend.conv_ops import conv_geometry
from tensornet.backend.numpy_backend import NumpyBackend

_numba_conv = pytest.importorskip("tensornet.backend._numba_conv", reason="numba not installed")
from tensornet.backend.numpy_conv import _axes  # noqa: E402

# (x shape, window, strides, dilation, padding)
GEOMETRIES = [
    ((3, 7, 6, 5), (3, 3), (1, 1), (1, 1), "same"),
    ((2, 9, 8, 4), (2, 2), (1, 1), (1, 1), "same"),
    ((2, 8, 9, 6), (3, 2), (2, 3), (1, 1), "same"),
    ((1, 11, 10, 4), (3, 3), (1, 1), (2, 3), "valid"),
    ((5, 6, 7, 7), (4, 3), (3, 2), (1, 1), "valid"),
    ((2, 5, 5, 9), (5, 5), (1, 1), (1, 1), "same"),
    ((3, 9, 7, 1), (3, 3), (1, 1), (1, 1), "same"),
    ((2, 8, 9, 1), (2, 2), (2, 2), (1, 1), "same"),
    ((3, 10, 9, 1), (3, 2), (1, 2), (2, 1), "valid"),
    ((2, 11, 9, 3), (3, 3), (2, 2), (2, 2), "same"),
    ((2, 7, 8, 5), (4, 4), (1, 1), (1, 1), "same"),
    ((2, 9, 11, 3), (2, 3), (2, 1), (1, 2), "same"),
]
POOLS = [
    ((3, 7, 6, 5), (2, 2), (2, 2), "valid"),
    ((2, 7, 9, 3), (2, 2), (2, 2), "same"),
    ((2, 8, 7, 4), (3, 3), (2, 1), "same"),
    ((1, 5, 6, 2), (3, 2), (1, 1), "valid"),
    ((3, 9, 7, 1), (3, 3), (1, 1), "same"),
    ((2, 11, 9, 3), (2, 2), (2, 2), "same"),
    ((2, 9, 8, 5), (4, 3), (2, 3), "same"),
    ((2, 7, 7, 1), (3, 3), (2, 2), "valid"),
    ((2, 10, 11, 3), (2, 2), (3, 3), "valid"),
    ((2, 10, 11, 6), (2, 1), (3, 2), "same"),
]
DTYPES = [np.float32, np.float64]


@pytest.fixture
def fast():
    backend = NumpyBackend()
    backend._set_kernels("numba")
    yield backend
    backend.finish()


def nonzero(rng, shape, dtype):
    return (rng.uniform(0.1, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)).astype(dtype)


@pytest.mark.parametrize("twin", [0, 1], ids=["parallel", "serial"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,window,strides,dilation,padding", GEOMETRIES)
def test_im2col_and_col2im_match_the_reference(twin, dtype, shape, window, strides, dilation, padding):
    rng = np.random.default_rng(sum(shape))
    x = nonzero(rng, shape, dtype)
    rows, cols = conv_geometry(shape[1:], window, strides, dilation, padding)
    expected = Backend().im2col(x, rows, cols)
    out = np.full_like(expected, np.nan)
    _numba_conv.im2col[twin](x, out, *_axes(rows, cols))
    np.testing.assert_array_equal(out, expected)  # a copy: bit for bit
    dcols = nonzero(rng, expected.shape, dtype)
    expected_dx = Backend().col2im(dcols, shape, rows, cols)
    dx = np.full(shape, np.nan, dtype=dtype)
    _numba_conv.col2im[twin](dcols, dx, *_axes(rows, cols))
    tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dx, expected_dx, **tol)


@pytest.mark.parametrize("twin", [0, 1], ids=["parallel", "serial"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", POOLS)
def test_max_pooling_matches_the_reference(twin, dtype, shape, pool, strides, padding):
    rng = np.random.default_rng(sum(shape) + 1)
    x = nonzero(rng, shape, dtype)
    x[0, :2, :2, :] = x[0, 0, 0, 0]  # a tie in the first window
    rows, cols = conv_geometry(shape[1:], pool, strides, (1, 1), padding)
    expected, expected_index = Backend().max_pool2d(x, rows, cols)
    y, index = np.full_like(expected, np.nan), np.full(expected.shape, -1, dtype=expected_index.dtype)
    _numba_conv.max_pool2d[twin](x, y, index, *_axes(rows, cols, dilated=False))
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(index, expected_index)
    dy = nonzero(rng, y.shape, dtype)
    expected_dx = Backend().max_pool2d_backward(dy, index, shape, rows, cols)
    dx = np.full(shape, np.nan, dtype=dtype)
    _numba_conv.max_pool2d_backward[twin](dy, index, dx, *_axes(rows, cols, dilated=False))
    np.testing.assert_array_equal(dx, expected_dx)  # the reference's (u, v) order: bit for bit


@pytest.mark.parametrize("twin", [0, 1], ids=["parallel", "serial"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", POOLS)
def test_max_pooling_with_many_ties_matches_the_reference(twin, dtype, shape, pool, strides, padding):
    rng = np.random.default_rng(sum(shape) + 2)
    x = rng.choice(np.array([-1.5, -0.5, 0.5, 1.5], dtype=dtype), size=shape)  # ties in most windows
    rows, cols = conv_geometry(shape[1:], pool, strides, (1, 1), padding)
    expected, expected_index = Backend().max_pool2d(x, rows, cols)
    y, index = np.full_like(expected, np.nan), np.full(expected.shape, -1, dtype=expected_index.dtype)
    _numba_conv.max_pool2d[twin](x, y, index, *_axes(rows, cols, dilated=False))
    np.testing.assert_array_equal(index, expected_index)
    dy = nonzero(rng, y.shape, dtype)
    dx = np.full(shape, np.nan, dtype=dtype)
    _numba_conv.max_pool2d_backward[twin](dy, index, dx, *_axes(rows, cols, dilated=False))
    np.testing.assert_array_equal(dx, Backend().max_pool2d_backward(dy, index, shape, rows, cols))


@pytest.mark.parametrize("twin", [0, 1], ids=["parallel", "serial"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", POOLS)
def test_average_pooling_matches_the_reference(twin, dtype, shape, pool, strides, padding):
    rng = np.random.default_rng(sum(shape) + 3)
    x = nonzero(rng, shape, dtype)
    rows, cols = conv_geometry(shape[1:], pool, strides, (1, 1), padding)
    expected = Backend().avg_pool2d(x, rows, cols)
    y = np.full_like(expected, np.nan)
    _numba_conv.avg_pool2d[twin](x, y, *_axes(rows, cols, dilated=False))
    np.testing.assert_array_equal(y, expected)
    dy = nonzero(rng, y.shape, dtype)
    dx = np.full(shape, np.nan, dtype=dtype)
    _numba_conv.avg_pool2d_backward[twin](dy, dx, *_axes(rows, cols, dilated=False))
    np.testing.assert_array_equal(dx, Backend().avg_pool2d_backward(dy, shape, rows, cols))


@pytest.mark.parametrize("twin", [0, 1], ids=["parallel", "serial"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,parts", [((1, 3), 1), ((7, 5), 3), ((301, 8), 2), ((1000, 17), 1), ((5, 4), 9)])
def test_conv_bias_gradient_matches_the_reference(twin, dtype, shape, parts):
    from tensornet.backend import _numba_conv_bias

    rng = np.random.default_rng(shape[0])
    dz = nonzero(rng, shape, dtype)
    out = np.full(shape[1], np.nan, dtype=dtype)
    _numba_conv_bias.sum_rows[twin](dz, out, min(parts, shape[0]))
    expected = Backend().sum_rows(dz)
    if parts == 1:
        np.testing.assert_array_equal(out, expected)  # every row in order, as the reference
    tol = dict(rtol=2e-6, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(out, expected, **tol)
    assert out.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,window,strides,dilation,padding", GEOMETRIES[:3] + GEOMETRIES[6:7] + GEOMETRIES[9:10])
def test_backend_conv2d_and_backward_match_the_reference(fast, dtype, shape, window, strides, dilation, padding):
    rng = np.random.default_rng(7)
    x = nonzero(rng, shape, dtype)
    kernel = nonzero(rng, (*window, shape[3], 5), dtype)
    bias = nonzero(rng, (5,), dtype)
    rows, cols = conv_geometry(shape[1:], window, strides, dilation, padding)
    z, patches = fast.conv2d(x, kernel, bias, rows, cols)
    z_ref, patches_ref = Backend().conv2d(x, kernel, bias, rows, cols)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z, z_ref, **tol)
    dz = nonzero(rng, z.shape, dtype)
    got = fast.conv2d_backward(dz, patches, shape, kernel, rows, cols, dbias_out=np.empty(5, dtype))
    want = Backend().conv2d_backward(dz, patches_ref, shape, kernel, rows, cols, dbias_out=np.empty(5, dtype))
    for ours, theirs in zip(got, want):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,padding", POOLS[1:3] + POOLS[4:5])
def test_backend_pooling_matches_the_reference(fast, dtype, shape, pool, strides, padding):
    rng = np.random.default_rng(11)
    x = nonzero(rng, shape, dtype)
    rows, cols = conv_geometry(shape[1:], pool, strides, (1, 1), padding)
    y, index = fast.max_pool2d(x, rows, cols)
    dy = nonzero(rng, y.shape, dtype)
    np.testing.assert_array_equal(fast.max_pool2d_backward(dy, index, shape, rows, cols),
                                  Backend().max_pool2d_backward(dy, index, shape, rows, cols))
    np.testing.assert_array_equal(fast.avg_pool2d(x, rows, cols), Backend().avg_pool2d(x, rows, cols))
    np.testing.assert_array_equal(fast.avg_pool2d_backward(dy, shape, rows, cols),
                                  Backend().avg_pool2d_backward(dy, shape, rows, cols))


def test_unsuitable_arrays_fall_back_to_the_reference(fast):
    rng = np.random.default_rng(8)
    x = nonzero(rng, (2, 6, 8, 4), np.float32)[:, :, ::2]  # not contiguous
    rows, cols = conv_geometry(x.shape[1:], (3, 3), (1, 1), (1, 1), "same")
    np.testing.assert_array_equal(fast.im2col(x, rows, cols), Backend().im2col(x, rows, cols))
    y, index = fast.max_pool2d(x, *conv_geometry(x.shape[1:], (2, 2), (2, 2), (1, 1), "valid"))
    np.testing.assert_array_equal(y, Backend().max_pool2d(x, *conv_geometry(x.shape[1:], (2, 2), (2, 2), (1, 1),
                                                                             "valid"))[0])


def test_the_kernels_are_named_after_the_operations_and_used():
    from tensornet.backend import numpy_conv
    from tensornet.backend.conv_ops import ConvOps

    source = inspect.getsource(numpy_conv)
    for name in _numba_conv.__all__:
        assert name in vars(ConvOps), f"_numba_conv.{name} is not named after a ConvOps operation"
        assert f'"{name}"' in source, f"numpy_conv never calls _numba_conv.{name}"
        assert f"super().{name}(" in source, f"NumpyConvOps.{name} never falls back to the reference"


@pytest.mark.parametrize("mode", ["numpy", "numba"])
def test_training_a_cnn_matches_the_reference_backend(mode):
    from tensornet.backend import use_backend
    from tensornet.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from tensornet.models import Sequential

    rng = np.random.default_rng(9)
    x = rng.standard_normal((40, 10, 9, 1)).astype("float32")
    y = rng.integers(0, 3, 40)
    results = []
    for backend in (Backend(), NumpyBackend()):
        if isinstance(backend, NumpyBackend):
            backend._set_kernels(mode)
        with use_backend(backend):
            model = Sequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(10, 9, 1)),
                                MaxPooling2D(padding="same"), Conv2D(6, 2, activation="relu"), MaxPooling2D(),
                                Flatten(), Dense(3, activation="softmax")], seed=1)
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
            model.fit(x, y, batch_size=8, epochs=2, verbose=0)
            results.append(model.get_weights())
        backend.finish()
    for ours, ref in zip(*results):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


# Direct convolution (tensornet.backend._numba_direct_conv): windows of few taps (kh kw c <= 27),
# on both sides of FILTERS_INNER and GRADS_POSITIONS_OUTER (each kernel's two loop orders).
DIRECT = [  # (x shape, window, strides, dilation, padding, filters)
    ((3, 9, 7, 1), (3, 3), (1, 1), (1, 1), "same", 8),
    ((2, 8, 9, 1), (2, 2), (1, 1), (1, 1), "same", 5),
    ((2, 11, 9, 3), (3, 3), (2, 2), (1, 1), "same", 1),
    ((3, 10, 9, 1), (3, 2), (1, 2), (2, 1), "valid", 5),
    ((2, 9, 11, 3), (2, 3), (2, 1), (1, 2), "same", 8),
    ((1, 7, 8, 3), (3, 3), (1, 1), (2, 2), "same", 5),
    ((2, 6, 7, 1), (4, 2), (2, 2), (1, 1), "same", 1),
    ((2, 10, 9, 3), (3, 3), (2, 1), (1, 2), "valid", 17),  # from FILTERS_INNER filters: q innermost
    ((2, 7, 9, 1), (3, 3), (1, 1), (1, 1), "same", 12),
    ((2, 8, 7, 1), (3, 2), (2, 1), (1, 2), "same", 33),  # c f from GRADS_POSITIONS_OUTER: j outermost
]


def _direct_tolerance(dtype, scale):
    """float32: relative to the sum of |terms| (the sums run in another order); float64: 1e-12."""
    return dict(rtol=1e-12, atol=1e-12 * scale) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6 * scale)


@pytest.mark.parametrize("twin", [0, 1], ids=["parallel", "serial"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,window,strides,dilation,padding,f", DIRECT)
def test_direct_conv_kernels_match_the_reference(twin, dtype, shape, window, strides, dilation, padding, f):
    from tensornet.backend import _numba_direct_conv
    from tensornet.backend._numba_kernels import row_blocks

    rng = np.random.default_rng(shape[1] * 10 + f)
    x = nonzero(rng, shape, dtype)
    kernel = nonzero(rng, (*window, shape[3], f), dtype)
    rows, cols = conv_geometry(shape[1:], window, strides, dilation, padding)
    z_ref, patches = Backend().conv2d(x, kernel, None, rows, cols)
    z = np.full(z_ref.shape, np.nan, dtype=dtype)
    _numba_direct_conv.direct_conv2d[twin](x, kernel, z, *_axes(rows, cols))
    scale = float(np.abs(Backend().conv2d(np.abs(x), np.abs(kernel), None, rows, cols)[0]).max())
    np.testing.assert_allclose(z, z_ref, **_direct_tolerance(dtype, scale))
    dz = nonzero(rng, z.shape, dtype)
    dk, db = np.full(kernel.shape, np.nan, dtype=dtype), np.full(f, np.nan, dtype=dtype)
    grads = _numba_direct_conv.direct_conv2d_grads
    parts = row_blocks(grads, grads[twin], shape[0] * rows[5])
    _numba_direct_conv.direct_conv2d_grads[twin](x, dz, dk, db, True, max(parts, 2 - twin), *_axes(rows, cols))
    _, dk_ref, db_ref = Backend().conv2d_backward(dz, patches, shape, kernel, rows, cols,
                                                  dbias_out=np.empty(f, dtype), need_dx=False)
    scale = float(np.abs(patches).sum(axis=0).max() * np.abs(dz).max())
    np.testing.assert_allclose(dk, dk_ref, **_direct_tolerance(dtype, scale))
    np.testing.assert_allclose(db, db_ref, **_direct_tolerance(dtype, 2.0 * dz[..., 0].size))
    assert z.dtype == dk.dtype == db.dtype == dtype


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,window,strides,dilation,padding,f", DIRECT[:1] + DIRECT[2:3] + DIRECT[4:5])
def test_backend_direct_conv_matches_the_reference(fast, need_dx, dtype, shape, window, strides, dilation,
                                                   padding, f):
    rng = np.random.default_rng(5)
    x = nonzero(rng, shape, dtype)
    kernel, bias = nonzero(rng, (*window, shape[3], f), dtype), nonzero(rng, (f,), dtype)
    rows, cols = conv_geometry(shape[1:], window, strides, dilation, padding)
    z, context = fast.conv2d(x, kernel, bias, rows, cols)
    assert context is x  # no im2col matrix
    z_ref, patches = Backend().conv2d(x, kernel, bias, rows, cols)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z, z_ref, **tol)
    dz = nonzero(rng, z.shape, dtype).reshape(-1, f)  # the layer's 2-D dz
    dk_out = np.full(kernel.shape, np.nan, dtype=dtype)
    got = fast.conv2d_backward(dz, context, shape, kernel, rows, cols, dkernel_out=dk_out,
                               dbias_out=np.empty(f, dtype), need_dx=need_dx)
    want = Backend().conv2d_backward(dz, patches, shape, kernel, rows, cols, dbias_out=np.empty(f, dtype),
                                     need_dx=need_dx)
    assert got[1] is dk_out and (got[0] is None) == (not need_dx)
    for ours, theirs in zip(got, want):
        if theirs is not None:
            assert ours.dtype == dtype
            np.testing.assert_allclose(ours, theirs, rtol=tol["rtol"], atol=tol["atol"] * 20)


def test_direct_conv_is_off_above_the_tap_limit_and_with_the_flag(fast, monkeypatch):
    from tensornet.backend import numpy_conv

    rng = np.random.default_rng(3)
    x = nonzero(rng, (2, 7, 6, 4), np.float32)  # 3 x 3 x 4 = 36 taps
    rows, cols = conv_geometry(x.shape[1:], (3, 3), (1, 1), (1, 1), "same")
    assert fast.conv2d(x, nonzero(rng, (3, 3, 4, 5), np.float32), None, rows, cols)[1].ndim == 2
    monkeypatch.setattr(numpy_conv, "DIRECT_TAPS", 0)
    x1 = nonzero(rng, (2, 7, 6, 1), np.float32)
    rows, cols = conv_geometry(x1.shape[1:], (3, 3), (1, 1), (1, 1), "same")
    assert fast.conv2d(x1, nonzero(rng, (3, 3, 1, 5), np.float32), None, rows, cols)[1].ndim == 2


def test_direct_convolution_leaves_mixed_dtypes_to_the_reference():
    from tensornet.backend.base import Backend
    from tensornet.backend.conv_ops import conv_geometry
    from tensornet.backend.numpy_backend import NumpyBackend

    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 7, 6, 1)).astype(np.float32) + 0.5
    kernel = rng.standard_normal((3, 3, 1, 4))  # float64 against a float32 image
    rows, cols = conv_geometry(x.shape[1:], (3, 3), (1, 1), (1, 1), "same")
    z, _ = NumpyBackend().conv2d(x, kernel, None, rows, cols)
    z_ref, _ = Backend().conv2d(x, kernel, None, rows, cols)
    np.testing.assert_allclose(z, z_ref, rtol=1e-6, atol=1e-6)
