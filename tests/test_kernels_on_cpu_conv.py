"""The ``im2col`` CUDA family (``kernels/im2col.cu``: im2col, col2im, max pooling forward and
backward), compiled unchanged for the host by the harness in ``tests/cuda_harness``, against
the backend's NumPy reference (:class:`Backend`): each name expression launched with the CuPy
backend's elementwise grid over random, never-zero images of awkward sizes (odd sizes,
strides, dilation, "same" padding on both sides, ties in max pooling, more elements than one
whole grid so the grid-stride loops wrap, and a one-block launch), and through the CuPy
backend's own launch code (:class:`CupyConvOps` on the harness), a whole convolution layer
forward and backward included.

Tolerances: im2col and max pooling copy values, so they match bit for bit; col2im and the
pooling gradient add in the reference's order, so they match bit for bit as well."""
from __future__ import annotations

import numpy as np
import pytest

from tensornet.backend import Backend, kernels
from tensornet.backend.conv_ops import conv_geometry
from tensornet.backend.cupy_conv import CupyConvOps

from tests.cuda_harness import launch as geometry
from tests.cuda_harness import load_family

pytestmark = pytest.mark.kernels_on_cpu

DTYPES = {c: np.dtype(d) for d, c in kernels.FLOAT_CTYPES.items()}
REFERENCE = Backend()
# (x shape, window, strides, dilation, padding)
CONVS = [
    ((2, 7, 6, 3), (3, 3), (1, 1), (1, 1), "same"),
    ((1, 9, 8, 2), (2, 2), (1, 1), (1, 1), "same"),
    ((2, 8, 9, 5), (3, 2), (2, 3), (1, 1), "same"),
    ((1, 11, 10, 3), (3, 3), (1, 1), (2, 3), "valid"),
    ((3, 6, 7, 1), (4, 3), (3, 2), (1, 1), "valid"),
    ((9, 16, 16, 4), (3, 3), (1, 1), (1, 1), "same"),  # more than a whole grid
]
POOLS = [
    ((2, 7, 6, 3), (2, 2), (2, 2), "valid"),
    ((2, 7, 9, 3), (2, 2), (2, 2), "same"),
    ((1, 8, 7, 4), (3, 3), (2, 1), "same"),
    ((2, 5, 6, 2), (3, 2), (1, 1), "valid"),
    ((9, 24, 24, 8), (2, 2), (2, 2), "valid"),  # more than a whole grid
]


def _names(template):
    return [n for n in kernels.name_expressions("im2col") if n.startswith(template + "<")]


def _dtype(name):
    return DTYPES[name[name.index("<") + 1:-1]]


def _nonzero(rng, shape, dtype):
    return (rng.uniform(0.05, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)).astype(dtype)


def _launch(name, n, args, blocks=None):
    kernel = load_family("im2col").get_function(name)
    blocks = blocks or geometry.elementwise_blocks(n)
    kernel((blocks,), (geometry.BLOCK_SIZE,), (np.int64(n),) + tuple(args))


def _window_ints(shape, rows, cols, dilated=True):
    pick = (0, 1, 2, 3, 5) if dilated else (0, 1, 3, 5)
    return tuple(np.int32(v) for v in (shape[1], shape[2], shape[3]) + tuple(rows[i] for i in pick)
                 + tuple(cols[i] for i in pick))


@pytest.mark.parametrize("one_block", [False, True], ids=["grid", "one-block"])
@pytest.mark.parametrize("case", CONVS, ids=lambda c: "x".join(map(str, c[0])) + f"-{c[4]}")
@pytest.mark.parametrize("name", _names("im2col"))
def test_im2col_and_col2im(name, case, one_block):
    dtype = _dtype(name)
    shape, window, strides, dilation, padding = case
    rng = np.random.default_rng(sum(shape))
    x = _nonzero(rng, shape, dtype)
    rows, cols = conv_geometry(shape[1:], window, strides, dilation, padding)
    expected = REFERENCE.im2col(x, rows, cols)
    out = np.full_like(expected, np.nan)
    _launch(name, out.size, (x, out) + _window_ints(shape, rows, cols), blocks=1 if one_block else None)
    np.testing.assert_array_equal(out, expected)
    dcols = _nonzero(rng, expected.shape, dtype)
    dx = np.full(shape, np.nan, dtype=dtype)
    _launch(name.replace("im2col", "col2im"), dx.size, (dcols, dx) + _window_ints(shape, rows, cols),
            blocks=1 if one_block else None)
    np.testing.assert_array_equal(dx, REFERENCE.col2im(dcols, shape, rows, cols))


@pytest.mark.parametrize("case", POOLS, ids=lambda c: "x".join(map(str, c[0])) + f"-{c[3]}")
@pytest.mark.parametrize("name", _names("max_pool2d"))
def test_max_pool2d_and_backward(name, case):
    dtype = _dtype(name)
    shape, pool, strides, padding = case
    rng = np.random.default_rng(sum(shape) + 1)
    x = _nonzero(rng, shape, dtype)
    x[0, :3, :3, 0] = x[0, 1, 1, 0]  # ties: the first maximum of each window wins
    rows, cols = conv_geometry(shape[1:], pool, strides, (1, 1), padding)
    y_ref, index_ref = REFERENCE.max_pool2d(x, rows, cols)
    y, index = np.full_like(y_ref, np.nan), np.full(y_ref.shape, -1, dtype=np.int32)
    _launch(name, y.size, (x, y, index) + _window_ints(shape, rows, cols, dilated=False))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(index, index_ref)
    dy = _nonzero(rng, y.shape, dtype)
    dx = np.full(shape, np.nan, dtype=dtype)
    _launch(name.replace("max_pool2d", "max_pool2d_backward"), dx.size,
            (dy, index, dx) + _window_ints(shape, rows, cols, dilated=False))
    np.testing.assert_array_equal(dx, REFERENCE.max_pool2d_backward(dy, index, shape, rows, cols))


class HarnessConv(CupyConvOps, Backend):
    """CupyConvOps on NumPy arrays, its launches on the harness with the CuPy backend's grid."""

    xp = np

    def __init__(self):
        super().__init__()
        self.launches = []

    def _launch_elementwise(self, family, name, n, args):
        self.launches.append(name)
        _launch(name, n, args)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_backend_mixin_runs_a_conv_layer_on_the_kernels(dtype):
    ops = HarnessConv()
    rng = np.random.default_rng(5)
    x = _nonzero(rng, (3, 9, 8, 2), dtype)
    kernel = _nonzero(rng, (3, 2, 2, 4), dtype)
    bias = _nonzero(rng, (4,), dtype)
    rows, cols = conv_geometry(x.shape[1:], (3, 2), (2, 1), (1, 1), "same")
    z, patches = ops.conv2d(x, kernel, bias, rows, cols)
    z_ref, patches_ref = REFERENCE.conv2d(x, kernel, bias, rows, cols)
    np.testing.assert_array_equal(patches, patches_ref)
    np.testing.assert_allclose(z, z_ref, rtol=1e-6 if dtype == np.float32 else 1e-13)
    dz = _nonzero(rng, z.shape, dtype)
    dx, dk, _ = ops.conv2d_backward(dz, patches, x.shape, kernel, rows, cols)
    dx_ref, dk_ref, _ = REFERENCE.conv2d_backward(dz, patches_ref, x.shape, kernel, rows, cols)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(dk, dk_ref, rtol=1e-6 if dtype == np.float32 else 1e-13)
    pool_rows, pool_cols = conv_geometry(z.shape[1:], (2, 2), (2, 2), (1, 1), "same")
    y, index = ops.max_pool2d(z_ref, pool_rows, pool_cols)
    np.testing.assert_array_equal(y, REFERENCE.max_pool2d(z_ref, pool_rows, pool_cols)[0])
    ops.max_pool2d_backward(y, index, z.shape, pool_rows, pool_cols)
    assert ops.launches == [f"{k}<{kernels.FLOAT_CTYPES[np.dtype(dtype).name]}>"
                            for k in ("im2col", "col2im", "max_pool2d", "max_pool2d_backward")]


def test_unsuitable_arrays_go_to_the_reference():
    ops = HarnessConv()
    x = np.ones((2, 5, 6, 3), dtype=np.float32)[:, :, ::2]  # not contiguous
    rows, cols = conv_geometry(x.shape[1:], (3, 3), (1, 1), (1, 1), "same")
    np.testing.assert_array_equal(ops.im2col(x, rows, cols), REFERENCE.im2col(x, rows, cols))
    one = conv_geometry((5, 6, 3), (1, 1), (1, 1), (1, 1), "valid")
    ops.im2col(np.ones((2, 5, 6, 3), dtype=np.float32), *one)  # 1x1: the input itself, no launch
    assert ops.launches == []
    rows, cols = conv_geometry((5, 6, 3), (3, 3), (1, 1), (1, 1), "same")
    with pytest.raises(ValueError, match=r"im2col: out must be a C-contiguous float32 array of shape \(60, 27\)"):
        ops.im2col(np.ones((2, 5, 6, 3), dtype=np.float32), rows, cols, out=np.empty((60, 26), np.float32))
