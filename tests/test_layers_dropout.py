"""Dropout (inverted): mask statistics, scaling, identity at inference, same mask in backward."""
import numpy as np
import pytest

from helpers import numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet.layers import Dense, Dropout
from tensornet.models import Sequential

ops = numpy_ops()
SIZE = 100_000


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.8])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mask_statistics(rate, dtype):
    layer = Dropout(rate, seed=123, dtype=dtype)
    x = np.ones((100, SIZE // 100), dtype=dtype)
    y = layer(x, training=True).copy()
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    kept = y != 0
    p = 1.0 - rate
    sigma = np.sqrt(p * (1 - p) / SIZE)
    assert abs(kept.mean() - p) < 5 * sigma, (kept.mean(), p)
    # kept values scaled by exactly 1 / (1 - rate)
    np.testing.assert_allclose(y[kept], np.asarray(1.0 / (1.0 - rate), dtype=dtype), rtol=0, atol=0)
    # the mean is preserved: E[y] = x; std of the mean is sqrt(rate / (1 - rate) / n)
    mean_sigma = np.sqrt(rate / (1 - rate) / SIZE)
    assert abs(y.mean() - 1.0) < 5 * mean_sigma


def test_mask_on_random_inputs_scales_kept_entries():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, size=(200, 500))
    layer = Dropout(0.25, seed=1, dtype="float64")
    y = layer(x, training=True).copy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-15)
    assert abs(kept.mean() - 0.75) < 5 * np.sqrt(0.75 * 0.25 / x.size)


def test_gradient_uses_the_same_mask():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.5, 1.5, size=(50, 40))
    layer = Dropout(0.4, seed=3, dtype="float64")
    y = layer(x, training=True).copy()
    dy = rng.standard_normal(x.shape)
    dx = layer.backward(dy)
    mask = y / x  # 0 or 1 / (1 - rate), the mask the forward pass drew
    np.testing.assert_allclose(dx, dy * mask, rtol=1e-14, atol=0)
    assert np.all((dx == 0) == (y == 0))
    # y is linear in x for the fixed mask: dL/dx of L = sum(dy * y) is dy * mask exactly
    np.testing.assert_allclose(np.sum(dy * y), np.sum(dx * x), rtol=1e-12)


def test_identity_when_not_training():
    x = np.random.default_rng(4).standard_normal((10, 20))
    layer = Dropout(0.5, seed=0, dtype="float64")
    y = layer(x, training=False)
    np.testing.assert_array_equal(y, x)
    dy = np.ones_like(x)
    assert layer.backward(dy) is dy
    zero = Dropout(0.0, seed=0, dtype="float64")
    np.testing.assert_array_equal(zero(x, training=True), x)


def test_masks_differ_between_steps_and_are_seeded():
    x = np.ones((20, 50))
    a, b = Dropout(0.5, seed=7, dtype="float64"), Dropout(0.5, seed=7, dtype="float64")
    first_a, first_b = a(x, training=True).copy(), b(x, training=True).copy()
    np.testing.assert_array_equal(first_a, first_b)  # same seed, same mask
    second_a = a(x, training=True).copy()
    assert not np.array_equal(first_a, second_a)  # a fresh mask every step


def test_predict_and_evaluate_skip_dropout():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 6))
    with_dropout = Sequential([Dense(8, activation="relu", input_shape=(6,)), Dropout(0.5), Dense(3)],
                              dtype="float64", seed=1)
    plain = Sequential([Dense(8, activation="relu", input_shape=(6,)), Dense(3)], dtype="float64", seed=1)
    with_dropout.build()
    plain.build()
    plain.set_weights(with_dropout.get_weights())
    np.testing.assert_allclose(with_dropout.predict(x), plain.predict(x), rtol=1e-14)
    np.testing.assert_allclose(with_dropout.predict(x), with_dropout.predict(x), rtol=0)
    k1, b1, k2, b2 = with_dropout.get_weights()
    np.testing.assert_allclose(with_dropout.predict(x), np.maximum(x @ k1 + b1, 0) @ k2 + b2, rtol=1e-12)


def test_dropout_in_training_step_model_gradient():
    """In a model, the gradient flowing through Dropout is masked exactly like the forward pass:
    for a Dense(linear) after Dropout, dkernel = (x * mask)^T dy."""
    rng = np.random.default_rng(6)
    model = Sequential([Dropout(0.5, input_shape=(10,)), Dense(3)], dtype="float64", seed=2)
    model.compile(optimizer="sgd", loss="mse")
    x = rng.uniform(0.5, 1.5, size=(40, 10))
    pred = model.forward(x, training=True)
    mask = model.layers[0]._mask
    assert mask is not None and set(np.unique(mask)) <= {0.0, 2.0}
    dy = rng.standard_normal(pred.shape)
    model.backward(dy)
    np.testing.assert_allclose(model.layers[1].gradients["kernel"], (x * mask).T @ dy, rtol=1e-12)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", True, None, float("nan")])
def test_invalid_rate_raises(rate):
    with pytest.raises(ValueError, match="rate"):
        Dropout(rate)


def test_dropout_on_images():
    """(batch, h, w, c) inputs: one mask entry per value, the same mask in backward."""
    from tensornet.layers import Conv2D, Flatten

    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 1.5, size=(8, 6, 5, 4)).astype("float32")
    layer = Dropout(0.25, seed=4)
    y = layer(x, training=True)
    assert y.shape == x.shape and y.dtype == np.float32
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    assert 0.6 < kept.mean() < 0.9
    dy = rng.standard_normal(x.shape).astype("float32")
    np.testing.assert_allclose(layer.backward(dy), np.where(kept, dy / 0.75, 0), rtol=1e-6)
    model = Sequential([Conv2D(3, 3, input_shape=(6, 5, 4)), Dropout(0.5), Flatten(), Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(x, rng.integers(0, 2, 8), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
