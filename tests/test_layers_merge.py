"""Merge layers: forward against NumPy, backward (every input) against central finite
differences in float64, and their shape errors."""
import numpy as np
import pytest

from helpers import check_gradient, numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet.layers import Add, Average, Concatenate, Dot, Input, Maximum, Minimum, Multiply, Subtract

ops = numpy_ops()

CASES = [
    (Add, 3, lambda xs: xs[0] + xs[1] + xs[2]),
    (Subtract, 2, lambda xs: xs[0] - xs[1]),
    (Multiply, 3, lambda xs: xs[0] * xs[1] * xs[2]),
    (Average, 3, lambda xs: (xs[0] + xs[1] + xs[2]) / 3),
    (Maximum, 3, lambda xs: np.maximum(np.maximum(xs[0], xs[1]), xs[2])),
    (Minimum, 2, lambda xs: np.minimum(xs[0], xs[1])),
]


def random_inputs(count, shape, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-2.0, 2.0, size=shape) for _ in range(count)]


def check_merge_gradients(layer, xs, seed=1):
    """dL/dx_i of L = sum(y * r) (r random, so dL/dy = r) against finite differences."""
    y = layer(xs)
    r = np.random.default_rng(seed).uniform(-1.0, 1.0, size=y.shape)
    grads = [np.array(g) for g in layer.backward(r)]
    for i, x in enumerate(xs):
        check_gradient(lambda: float(np.sum(layer.forward(xs) * r)), x, grads[i], what=f"{layer.name} input {i}")


@pytest.mark.parametrize("cls, count, reference", CASES, ids=[c[0].__name__ for c in CASES])
def test_elementwise_merge_forward_and_gradients(cls, count, reference):
    xs = random_inputs(count, (5, 7), seed=3)
    layer = cls(dtype="float64")
    np.testing.assert_allclose(layer(xs), reference(xs), rtol=1e-15, atol=1e-15)
    check_merge_gradients(layer, xs)


def test_maximum_hands_a_tie_to_the_first_input():
    layer = Maximum(dtype="float64")
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[1.0, 5.0, 0.0]])
    layer([a, b])
    da, db = layer.backward(np.array([[10.0, 20.0, 30.0]]))
    np.testing.assert_array_equal(da, [[10.0, 0.0, 30.0]])
    np.testing.assert_array_equal(db, [[0.0, 20.0, 0.0]])


def test_concatenate_last_axis_forward_and_gradients():
    xs = [random_inputs(1, (4, 3), seed=5)[0], random_inputs(1, (4, 5), seed=6)[0]]
    layer = Concatenate(dtype="float64")
    np.testing.assert_array_equal(layer(xs), np.concatenate(xs, axis=-1))
    check_merge_gradients(layer, xs)


def test_concatenate_inner_axis_of_two_dimensional_examples():
    xs = [random_inputs(1, (3, 2, 4), seed=7)[0], random_inputs(1, (3, 5, 4), seed=8)[0]]
    layer = Concatenate(axis=1, dtype="float64")
    np.testing.assert_array_equal(layer(xs), np.concatenate(xs, axis=1))
    assert layer.output_shape == (7, 4)
    check_merge_gradients(layer, xs)


def test_dot_of_vectors_forward_and_gradients():
    xs = random_inputs(2, (6, 5), seed=9)
    layer = Dot(axes=1, dtype="float64")
    np.testing.assert_allclose(layer(xs), np.sum(xs[0] * xs[1], axis=1, keepdims=True), rtol=1e-14)
    check_merge_gradients(layer, xs)


def test_merges_stay_in_float32():
    xs = [x.astype(np.float32) for x in random_inputs(2, (3, 4), seed=2)]
    for layer in (Add(), Multiply(), Average(), Maximum(), Concatenate(), Dot(axes=-1), Subtract()):
        assert layer(xs).dtype == np.float32, type(layer).__name__


@pytest.mark.parametrize("make, shapes, message", [
    (Add, [(3,), (4,)], "one shape"),
    (Subtract, [(3,), (3,), (3,)], "exactly 2"),
    (Concatenate, [(2, 3), (4, 3)], "agree on every other axis"),
    (Dot, [(3,), (4,)], "vectors of one length"),
])
def test_merge_shape_errors_name_the_layer_and_shapes(make, shapes, message):
    inputs = [Input(shape=shape) for shape in shapes]
    layer = make(name="merge_under_test")
    with pytest.raises(ValueError, match=message) as info:
        layer(inputs)
    assert "merge_under_test" in str(info.value)


def test_concatenate_rejects_the_batch_axis_and_dot_other_axes():
    with pytest.raises(ValueError, match="batch"):
        Concatenate(axis=0)([Input(shape=(3,)), Input(shape=(3,))])
    with pytest.raises(ValueError, match="axes"):
        Dot(axes=2)
    with pytest.raises(ValueError, match="normalize"):
        Dot(axes=1, normalize=True)


def test_a_merge_takes_a_list_of_tensors():
    with pytest.raises(TypeError, match="list of at least two"):
        Add()(Input(shape=(3,)))
