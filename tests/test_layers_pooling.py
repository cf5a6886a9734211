"""MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D and GlobalMaxPooling2D:
forward against direct references (and PyTorch), backward against central finite differences
in float64 (strides, overlapping windows, "same" padding), the routing of tied maxima, and the
errors naming the layer and the shapes."""
import numpy as np
import pytest

from conv_references import check_layer_gradients, np_pool2d
from helpers import numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet.layers import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D

ops = numpy_ops()

# (pool_size, strides, padding, input (h, w, c))
CASES = [
    ((2, 2), None, "valid", (6, 6, 2)),
    ((2, 2), None, "valid", (7, 5, 2)),      # the last row / column dropped
    ((3, 3), (2, 2), "valid", (7, 8, 2)),    # overlapping windows
    ((2, 2), None, "same", (5, 7, 3)),       # padding at the bottom / right
    ((3, 2), (1, 1), "same", (4, 5, 2)),     # padding on both sides, overlapping
    ((3, 3), (2, 1), "same", (6, 5, 1)),
]


def distinct_inputs(shape, seed=0):
    """A random permutation of well-separated values: no ties, gaps >> the FD step."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(np.prod(shape)).reshape(shape) * 0.01 - 1.0) + rng.uniform(0, 1e-4, size=shape)


def built(layer, x):
    layer.dtype = "float64"
    layer(x)
    return layer


@pytest.mark.parametrize("kind,cls", [("max", MaxPooling2D), ("avg", AveragePooling2D)])
@pytest.mark.parametrize("pool,strides,padding,in_shape", CASES)
def test_forward_matches_the_direct_reference(kind, cls, pool, strides, padding, in_shape):
    x = distinct_inputs((3, *in_shape))
    layer = built(cls(pool, strides=strides, padding=padding), x)
    expected = np_pool2d(x, pool, strides or pool, padding, kind)
    y = layer(x)
    assert y.shape == expected.shape and y.shape[1:] == layer.output_shape
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("cls", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize("pool,strides,padding,in_shape", CASES)
def test_gradients_match_finite_differences(cls, pool, strides, padding, in_shape):
    x = distinct_inputs((2, *in_shape), seed=1)
    layer = built(cls(pool, strides=strides, padding=padding), x)
    check_layer_gradients(layer, x, seed=2)


@pytest.mark.parametrize("cls", [GlobalAveragePooling2D, GlobalMaxPooling2D])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(cls, keepdims):
    x = distinct_inputs((3, 4, 5, 2), seed=3)
    layer = built(cls(keepdims=keepdims), x)
    y = layer(x)
    expected = x.mean(axis=(1, 2), keepdims=keepdims) if cls is GlobalAveragePooling2D else \
        x.max(axis=(1, 2), keepdims=keepdims)
    assert y.shape == expected.shape and y.shape[1:] == layer.output_shape
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)
    check_layer_gradients(layer, x, seed=4)


def test_tied_maxima_get_the_gradient_once_at_the_first():
    """A window of equal values passes dy to its first entry (row-major) only, as TensorFlow and
    PyTorch route it; overlapping windows add up. The one-sided derivative confirms the choice."""
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 1, 0] = 0.0  # every entry ties
    layer = built(MaxPooling2D(2, strides=1), x)
    layer.forward(x, training=True)
    dx = layer.backward(np.ones((1, 2, 2, 1)))
    expected = np.zeros((3, 3))
    expected[0, 0] = expected[0, 1] = expected[1, 0] = expected[1, 1] = 1.0  # each window's top-left
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)
    assert dx.sum() == 4.0  # the gradient is routed, never duplicated
    # ties between a picked and a later entry: raising the picked one moves the output by as much
    x = np.array([[5.0, 5.0], [1.0, 5.0]]).reshape(1, 2, 2, 1)
    layer = built(MaxPooling2D(2), x)
    layer.forward(x, training=True)
    dx = layer.backward(np.ones((1, 1, 1, 1)))[0, :, :, 0]
    np.testing.assert_array_equal(dx, [[1.0, 0.0], [0.0, 0.0]])
    bumped = x.copy()
    bumped[0, 0, 0, 0] += 1e-3
    assert layer(bumped)[0, 0, 0, 0] - layer(x)[0, 0, 0, 0] == pytest.approx(1e-3)
    x = np.full((2, 3, 4, 2), 7.0)
    layer = built(GlobalMaxPooling2D(), x)
    layer.forward(x, training=True)
    dx = layer.backward(np.ones((2, 2)))
    assert dx.sum() == 4.0 and np.all(dx[:, 0, 0, :] == 1.0)


def test_same_average_pooling_excludes_the_padding():
    x = np.ones((1, 3, 3, 1))
    layer = built(AveragePooling2D(2, padding="same"), x)
    np.testing.assert_array_equal(layer(x), np.ones((1, 2, 2, 1)))  # padding never counted


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    x = distinct_inputs((2, 7, 8, 3), seed=5)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2))
    for layer, reference in ((MaxPooling2D(3, strides=2), torch.nn.functional.max_pool2d(xt, 3, 2)),
                             (AveragePooling2D(2), torch.nn.functional.avg_pool2d(xt, 2))):
        np.testing.assert_allclose(built(layer, x)(x), reference.numpy().transpose(0, 2, 3, 1), rtol=1e-13)


def test_keras_defaults_and_config():
    layer = MaxPooling2D()
    assert (layer.pool_size, layer.strides, layer.padding) == ((2, 2), (2, 2), "valid")
    assert layer.name.startswith("max_pooling2d")
    assert AveragePooling2D(3, strides=1).get_config()["strides"] == [1, 1]
    assert GlobalMaxPooling2D(keepdims=True).get_config()["keepdims"] is True
    assert MaxPooling2D(3).build((9, 10, 4), ops=ops) == (3, 3, 4)
    assert MaxPooling2D(2).count_params() == 0


def test_errors_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"MaxPooling2D layer 'p' expects inputs of shape \(batch, height, width, "
                                         r"channels\); got per-example shape \(10, 10\)"):
        MaxPooling2D(name="p").build((10, 10), ops=ops)
    with pytest.raises(ValueError, match=r"AveragePooling2D layer 'q': pool 4x4 is larger than its input 3x5"):
        AveragePooling2D(4, name="q").build((3, 5, 2), ops=ops)
    with pytest.raises(ValueError, match=r"GlobalAveragePooling2D layer .* got per-example shape \(8,\)"):
        GlobalAveragePooling2D().build((8,), ops=ops)
    for bad in ({"pool_size": 0}, {"strides": (2, -1)}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MaxPooling2D(**bad)
    with pytest.raises(ValueError, match="padding"):
        AveragePooling2D(padding="causal")
    with pytest.raises(ValueError, match="channels_last"):
        GlobalMaxPooling2D(data_format="channels_first")
