"""Reshape: each example to ``target_shape`` as a view, the gradient reshaped back (checked
against central finite differences in float64), and its errors naming the layer and the shapes."""
import numpy as np
import pytest

from conv_references import check_layer_gradients
from helpers import numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet.layers import Conv2D, MaxPooling2D, Reshape
from tensornet.models import Sequential

ops = numpy_ops()


def built(layer, x):
    layer.dtype = "float64"
    layer(x)
    return layer


def test_reshape_round_trip_and_gradient():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 12))
    layer = built(Reshape((2, -1, 3)), x)
    assert layer.output_shape == (2, 2, 3)
    y = layer(x)
    np.testing.assert_array_equal(y, x.reshape(4, 2, 2, 3))
    assert np.shares_memory(y, x)
    check_layer_gradients(layer, x, seed=7)
    model = Sequential([Reshape((28, 28, 1), input_shape=(784,)), Conv2D(2, 3), MaxPooling2D()])
    assert model.output_shape == (13, 13, 2)


def test_reshape_errors():
    with pytest.raises(ValueError, match=r"Reshape layer 'r' cannot reshape per-example shape \(10,\) \(10 values\) "
                                         r"to \(3, 4\) \(12 values\)"):
        Reshape((3, 4), name="r").build((10,), ops=ops)
    with pytest.raises(ValueError, match="not a multiple of 4"):
        Reshape((4, -1)).build((10,), ops=ops)
    for bad in ((), (2, 0), (-1, -1), "3", (2.0,)):
        with pytest.raises(ValueError, match="target_shape"):
            Reshape(bad)
