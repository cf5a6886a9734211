"""to_categorical as in Keras (keras.utils.to_categorical), and its errors."""
import numpy as np
import pytest

from helpers import numpy_backend  # noqa: F401 (autouse fixture)

from tensornet.utils import to_categorical


def test_basic_one_hot():
    out = to_categorical([0, 2, 1, 2], 3)
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]])
    assert out.dtype == np.float32 and isinstance(out, np.ndarray)
    assert out.sum() == 4


def test_num_classes_defaults_to_max_plus_one():
    out = to_categorical(np.array([3, 1]))
    assert out.shape == (2, 4)
    np.testing.assert_array_equal(out.argmax(-1), [3, 1])


def test_more_classes_than_labels_seen():
    out = to_categorical([1], num_classes=10)
    np.testing.assert_array_equal(out, np.eye(10)[[1]])


def test_shapes_like_keras():
    # a trailing axis of 1 is dropped, other axes kept: shape + (num_classes,)
    assert to_categorical(np.array([[0], [1], [2]]), 3).shape == (3, 3)
    labels = np.array([[0, 1, 2], [2, 1, 0]])
    out = to_categorical(labels, 3)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.argmax(-1), labels)
    assert to_categorical(np.int64(2), 4).shape == (4,)


def test_dtypes():
    labels = np.array([0, 1], dtype=np.uint8)
    np.testing.assert_array_equal(to_categorical(labels, 2), np.eye(2))
    assert to_categorical([0, 1], 2, dtype="float64").dtype == np.float64
    np.testing.assert_array_equal(to_categorical(np.array([2.0, 0.0]), 3), [[0, 0, 1], [1, 0, 0]])


def test_round_trip_argmax():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=1000)
    out = to_categorical(labels, 10)
    np.testing.assert_array_equal(out.argmax(-1), labels)
    np.testing.assert_array_equal(out.sum(-1), 1.0)
    np.testing.assert_array_equal(out.sum(0), np.bincount(labels, minlength=10))


def test_errors():
    with pytest.raises(ValueError, match=r"outside \[0, 2\].*max 3"):
        to_categorical([0, 3], 3)
    with pytest.raises(ValueError, match=r"outside \[0, 2\].*min -1"):
        to_categorical([-1, 0], 3)
    with pytest.raises(ValueError, match="num_classes must be a positive int; got 0"):
        to_categorical([0], 0)
    with pytest.raises(ValueError, match="num_classes"):
        to_categorical([0], 2.0)
    with pytest.raises(TypeError, match="integer labels"):
        to_categorical(np.array([0.5, 1.0]), 2)
    with pytest.raises(TypeError, match="integer labels"):
        to_categorical(np.array(["a", "b"]), 2)


def test_set_random_seed_makes_unseeded_models_repeatable():
    from tensornet.layers import Dense
    from tensornet.models import Sequential
    from tensornet.utils import set_random_seed

    def weights():
        model = Sequential([Dense(4, input_shape=(3,))])
        model.build()
        return model.get_weights()[0]

    set_random_seed(5)
    first, second = weights(), weights()
    set_random_seed(5)
    again = weights()
    np.testing.assert_array_equal(first, again)          # same seed, same n-th model
    assert not np.array_equal(first, second)              # successive models differ
    with pytest.raises(ValueError, match="seed"):
        set_random_seed(-1)
