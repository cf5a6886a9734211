"""BatchNormalization: training forward, moving statistics and inference against NumPy by hand,
backward (inputs, gamma, beta) and a whole model against central finite differences in
float64, training, saving (state round trip, bit-exact resume), summary counts and errors."""
import math

import numpy as np
import pytest

from helpers import (check_gradient, model_analytic_gradient, model_batch_loss, numpy_backend,  # noqa: F401
                     numpy_ops)

import tensornet as tn
from tensornet import initializers
from tensornet.io import archive
from tensornet.layers import Activation, BatchNormalization, Dense, Dropout
from tensornet.models import Sequential, load_model
from tensornet.optimizers import Adam

ops = numpy_ops()


# ------------------------------------------------------------------ NumPy references
def np_batch_norm(x, gamma, beta, epsilon):
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)  # biased: divide by N
    x_hat = (x - mean) / np.sqrt(var + epsilon)
    return gamma * x_hat + beta, x_hat, mean, var


def np_inference(x, moving_mean, moving_var, gamma, beta, epsilon):
    return gamma * (x - moving_mean) / np.sqrt(moving_var + epsilon) + beta


def make_layer(features=4, n=6, seed=0, center=True, scale=True, **kwargs):
    """A float64 layer built on its own, with random (non-default) gamma and beta."""
    rng = np.random.default_rng(seed)
    layer = BatchNormalization(center=center, scale=scale, dtype="float64", **kwargs)
    x = rng.normal(0.5, 2.0, size=(n, features))
    layer(x[:1], training=False)  # builds (inference: the moving statistics stay as initialised)
    if scale:
        layer.weights["gamma"][...] = rng.uniform(0.5, 1.5, size=features) * rng.choice([-1, 1], size=features)
    if center:
        layer.weights["beta"][...] = rng.uniform(-1, 1, size=features)
    return layer, x


def gamma_beta(layer, features):
    gamma = layer.weights["gamma"].copy() if layer.scale else np.ones(features)
    beta = layer.weights["beta"].copy() if layer.center else np.zeros(features)
    return gamma, beta


# ------------------------------------------------------------------ forward
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False), (False, False)])
def test_training_forward_matches_numpy(center, scale):
    layer, x = make_layer(center=center, scale=scale, epsilon=1e-2)
    y = layer(x, training=True)
    assert y.dtype == np.float64 and y.shape == x.shape
    gamma, beta = gamma_beta(layer, 4)
    expected, x_hat, _, _ = np_batch_norm(x, gamma, beta, 1e-2)
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(layer._x_hat, x_hat, rtol=1e-13, atol=1e-14)
    assert set(layer.weights) == {name for name, on in (("gamma", scale), ("beta", center)) if on}


def test_backend_forward_returns_biased_statistics():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 3))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y, x_hat, inv_std, mean, var = ops.batch_norm_forward(x, gamma, beta, 1e-3)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(var, x.var(0, ddof=0), rtol=1e-13)  # not ddof=1
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(x.var(0) + 1e-3), rtol=1e-13)
    np.testing.assert_allclose(y, np_batch_norm(x, gamma, beta, 1e-3)[0], rtol=1e-13, atol=1e-14)


def test_moving_statistics_follow_the_keras_recurrence():
    layer, _ = make_layer(momentum=0.9)
    np.testing.assert_array_equal(layer.moving_mean, 0.0)  # moving_mean_initializer="zeros"
    np.testing.assert_array_equal(layer.moving_variance, 1.0)  # moving_variance_initializer="ones"
    rng = np.random.default_rng(3)
    mm, mv = np.zeros(4), np.ones(4)
    for step in range(5):
        x = rng.normal(step, 1 + step, size=(8 + step, 4))
        layer.forward(x, training=True)
        mm = mm * 0.9 + x.mean(0) * (1 - 0.9)
        mv = mv * 0.9 + x.var(0) * (1 - 0.9)  # biased batch variance, as Keras 3
        np.testing.assert_allclose(layer.moving_mean, mm, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(layer.moving_variance, mv, rtol=1e-13)


def test_inference_uses_moving_statistics_and_leaves_them_unchanged():
    layer, x = make_layer(momentum=0.5, epsilon=1e-3)
    rng = np.random.default_rng(4)
    for _ in range(3):
        layer.forward(rng.normal(2.0, 3.0, size=(10, 4)), training=True)
    mm, mv = layer.moving_mean.copy(), layer.moving_variance.copy()
    assert not np.allclose(mm, 0) and not np.allclose(mv, 1)
    gamma, beta = gamma_beta(layer, 4)
    y = layer.forward(x, training=False)
    np.testing.assert_allclose(y, np_inference(x, mm, mv, gamma, beta, 1e-3), rtol=1e-13, atol=1e-14)
    assert not np.allclose(y, np_batch_norm(x, gamma, beta, 1e-3)[0])  # not the batch statistics
    np.testing.assert_array_equal(layer.moving_mean, mm)
    np.testing.assert_array_equal(layer.moving_variance, mv)
    layer(x)  # __call__ defaults to training=False
    np.testing.assert_array_equal(layer.moving_mean, mm)


def test_default_arguments_are_keras():
    layer = BatchNormalization()
    assert (layer.axis, layer.momentum, layer.epsilon, layer.center, layer.scale) == (-1, 0.99, 1e-3, True, True)
    assert isinstance(layer.beta_initializer, initializers.Zeros)
    assert isinstance(layer.gamma_initializer, initializers.Ones)
    assert isinstance(layer.moving_mean_initializer, initializers.Zeros)
    assert isinstance(layer.moving_variance_initializer, initializers.Ones)
    assert BatchNormalization(axis=1).axis == -1 and BatchNormalization(axis=[-1]).axis == -1
    assert layer.build((5,), ops=ops, dtype="float32") == (5,)
    assert layer.weight_specs() == [("gamma", (5,), "float32"), ("beta", (5,), "float32")]
    assert layer.count_params() == 10 and layer.count_non_trainable_params() == 10


# ------------------------------------------------------------------ backward
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False), (False, False)])
def test_gradients_match_finite_differences(center, scale):
    layer, x = make_layer(n=5, seed=5, center=center, scale=scale, epsilon=1e-3)
    r = np.random.default_rng(6).standard_normal(x.shape)  # L = sum(r * y)

    def loss():
        return np.sum(r * layer.forward(x, training=True))

    layer.forward(x, training=True)
    dx = layer.backward(r.copy()).copy()
    grads = {k: v.copy() for k, v in layer.gradients.items()}
    check_gradient(loss, x, dx, what="BatchNormalization d/dx")
    if scale:
        check_gradient(loss, layer.weights["gamma"], grads["gamma"], what="BatchNormalization d/dgamma")
    if center:
        check_gradient(loss, layer.weights["beta"], grads["beta"], what="BatchNormalization d/dbeta")


def test_backward_closed_form():
    """dx = (gamma / sqrt(var + eps)) / N (N dy - sum dy - x_hat sum(dy x_hat))."""
    layer, x = make_layer(n=9, seed=7)
    dy = np.random.default_rng(8).standard_normal(x.shape)
    layer.forward(x, training=True)
    dx = layer.backward(dy.copy())
    gamma, _ = gamma_beta(layer, 4)
    _, x_hat, _, var = np_batch_norm(x, gamma, 0, 1e-3)
    n = x.shape[0]
    expected = (gamma / np.sqrt(var + 1e-3)) / n * (n * dy - dy.sum(0) - x_hat * (dy * x_hat).sum(0))
    np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.gradients["gamma"], (dy * x_hat).sum(0), rtol=1e-12)
    np.testing.assert_allclose(layer.gradients["beta"], dy.sum(0), rtol=1e-12)
    np.testing.assert_allclose(dx.sum(0), 0.0, atol=1e-12)  # the mean is removed


def test_backward_needs_a_training_forward_pass():
    layer, x = make_layer()
    layer.forward(x, training=False)
    with pytest.raises(RuntimeError, match="training forward"):
        layer.backward(np.ones_like(x))


# ------------------------------------------------------------------ in a model
def bn_model(dtype="float64", seed=0, activation="relu", momentum=0.99, dropout=False):
    layers = [Dense(6, input_shape=(5,)), BatchNormalization(momentum=momentum), Activation(activation)]
    if dropout:
        layers.append(Dropout(0.2))
    layers.append(Dense(3, activation="softmax"))
    return Sequential(layers, dtype=dtype, seed=seed)


batch_loss, analytic_gradient = model_batch_loss, model_analytic_gradient


@pytest.mark.parametrize("activation,loss", [("relu", "categorical_crossentropy"), ("tanh", "mse")])
def test_whole_model_gradient_matches_finite_differences(activation, loss):
    rng = np.random.default_rng(11)
    model = bn_model(seed=2, activation=activation)
    model.compile(optimizer="sgd", loss=loss)
    bn = model.layers[1]
    bn.weights["gamma"][...] = rng.uniform(0.5, 1.5, size=6)
    bn.weights["beta"][...] = rng.uniform(-0.5, 0.5, size=6)
    x = rng.standard_normal((8, 5))
    t = rng.uniform(0.05, 1, size=(8, 3))
    y = t / t.sum(-1, keepdims=True)
    model.forward(x, training=True)
    if activation == "relu":  # stay clear of the kink by far more than the FD step
        assert np.min(np.abs(bn.forward(model.layers[0].forward(x, training=True), training=True))) > 1e-4
    assert model.fused_output == ("softmax" if loss == "categorical_crossentropy" else None)
    params = model.store.groups["float64"][0]
    analytic = analytic_gradient(model, x, y)
    numeric = check_gradient(lambda: batch_loss(model, x, y), params, analytic, what=f"Dense-BN-{activation}")
    assert np.count_nonzero(numeric) > 0.5 * model.count_params()
    mask = np.zeros(params.size, bool)
    for _, _, shape, _, offset in model.store.slots:
        mask[offset:offset + math.prod(shape)] = True
    assert np.all(analytic[~mask] == 0)
    # the first Dense's bias is cancelled by the normalization: its gradient is zero
    np.testing.assert_allclose(model.layers[0].gradients["bias"], 0.0, atol=1e-12)


def test_batch_normalization_first_layer_returns_no_input_gradient():
    model = Sequential([BatchNormalization(input_shape=(3,)), Dense(2)], dtype="float64", seed=0)
    model.build()
    assert model.layers[0].needs_input_grad is False
    x = np.random.default_rng(0).standard_normal((4, 3))
    model.forward(x, training=True)
    assert model.backward(np.ones((4, 2))) is None
    assert np.any(model.layers[0].gradients["gamma"] != 0)


def classification_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 4.0, size=(n, 5))  # far from zero-mean / unit-variance
    labels = (x[:, 0] - x[:, 1] > 0).astype(int) + (x[:, 2] > 3.0).astype(int)
    return x.astype("float32"), tn.utils.to_categorical(labels, 3)


def test_model_trains_and_predict_uses_inference_mode():
    x, y = classification_data()
    model = bn_model(dtype="float32", seed=3, momentum=0.9)
    model.compile(optimizer=Adam(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0]
    assert all(b < a for a, b in zip(losses[::5], losses[5::5]))
    assert model.evaluate(x, y, verbose=0)[1] > 0.75

    bn = model.layers[1]
    mm, mv = bn.moving_mean.copy(), bn.moving_variance.copy()
    pred = model.predict(x, batch_size=7)
    model.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean, mm)  # predict / evaluate change nothing
    np.testing.assert_array_equal(bn.moving_variance, mv)
    weights = [w.astype(np.float64) for w in model.get_weights()]
    kernel, bias, gamma, beta, kernel2, bias2 = weights
    h = x.astype(np.float64) @ kernel + bias
    h = np.maximum(np_inference(h, mm.astype(np.float64), mv.astype(np.float64), gamma, beta, 1e-3), 0)
    z = h @ kernel2 + bias2
    expected = np.exp(z - z.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred, expected, rtol=1e-4, atol=1e-5)  # batch size does not matter


def test_float32_stays_float32():
    x, y = classification_data(n=40)
    model = bn_model(dtype="float32", seed=1)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.fit(x.astype(np.float64), y, epochs=1, batch_size=8, verbose=0)
    bn = model.layers[1]
    assert bn.moving_mean.dtype == np.float32 and bn.moving_variance.dtype == np.float32
    assert all(v.dtype == np.float32 for v in [*bn.weights.values(), *bn.gradients.values()])
    assert all(v.dtype == np.float32 for v in bn._workspaces.values())
    h = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    assert bn.forward(h, training=True).dtype == np.float32
    assert bn.moving_mean.dtype == np.float32 and bn.moving_variance.dtype == np.float32
    assert bn.backward(np.ones((5, 6), np.float32)).dtype == np.float32
    assert model.predict(x).dtype == np.float32
    state = bn.get_state_arrays()
    assert all(type(v) is np.ndarray and v.dtype == np.float32 for v in state.values())


def test_summary_counts_moving_statistics_as_non_trainable():
    model = bn_model(dtype="float32")
    for built in (False, True):
        if built:
            model.build()
        lines = []
        model.summary(print_fn=lines.append)
        rows = {line.split()[0]: line for line in lines if line.startswith(" ") and "(" in line}
        assert rows[model.layers[1].name].split()[-1] == str(4 * 6)
        trainable = 5 * 6 + 6 + 2 * 6 + 6 * 3 + 3
        assert f"Total params: {trainable + 12:,}" in lines
        assert f"Trainable params: {trainable:,}" in lines
        assert "Non-trainable params: 12" in lines
    assert model.count_params() == 5 * 6 + 6 + 2 * 6 + 6 * 3 + 3  # the flat buffer


def test_rebuild_keeps_moving_statistics():
    x, y = classification_data(n=64)
    model = bn_model(dtype="float32", seed=4)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    state = model.layers[1].get_state_arrays()
    model.add(Dense(2))  # a rebuild of the built model
    for name, value in model.layers[1].get_state_arrays().items():
        np.testing.assert_array_equal(value, state[name])


# ------------------------------------------------------------------ saving
def test_state_arrays_api():
    layer, x = make_layer()
    layer.forward(x, training=True)
    state = layer.get_state_arrays()
    assert set(state) == {"moving_mean", "moving_variance"}
    assert type(state["moving_mean"]) is np.ndarray and not np.shares_memory(state["moving_mean"], layer.moving_mean)
    other, _ = make_layer()
    other.set_state_arrays(state)
    np.testing.assert_array_equal(other.moving_mean, layer.moving_mean)
    np.testing.assert_array_equal(other.moving_variance, layer.moving_variance)
    with pytest.raises(ValueError, match="shape"):
        other.set_state_arrays({"moving_mean": np.zeros(5), "moving_variance": np.ones(4)})
    with pytest.raises(ValueError, match="moving_variance"):
        other.set_state_arrays({"moving_mean": np.zeros(4)})
    with pytest.raises(RuntimeError, match="built"):
        BatchNormalization().set_state_arrays(state)


def test_save_load_round_trip_identical_predictions(tmp_path):
    x, y = classification_data(n=96)
    model = Sequential([Dense(6, input_shape=(5,)),
                        BatchNormalization(momentum=0.8, epsilon=1e-2, moving_variance_initializer="zeros",
                                           gamma_initializer=initializers.RandomUniform(0.5, 1.5)),
                        Activation("relu"), Dense(3, activation="softmax")], dtype="float32", seed=5)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "bn.npz"
    model.save(path)
    header, arrays = archive.read_archive(path)
    assert {"state/1/moving_mean", "state/1/moving_variance"} <= set(arrays)
    loaded = load_model(path)
    bn, bn2 = model.layers[1], loaded.layers[1]
    assert isinstance(bn2, BatchNormalization) and bn2.get_config() == bn.get_config()
    assert (bn2.momentum, bn2.epsilon) == (0.8, 1e-2)
    for name, value in bn.get_state_arrays().items():
        np.testing.assert_array_equal(bn2.get_state_arrays()[name], value)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))

    weights_path = tmp_path / "weights.npz"
    model.save_weights(weights_path)
    fresh = Sequential([Dense(6, input_shape=(5,)), BatchNormalization(), Activation("relu"),
                        Dense(3, activation="softmax")], dtype="float32", seed=9)
    fresh.build()
    fresh.load_weights(weights_path)
    np.testing.assert_array_equal(fresh.layers[1].moving_variance, bn.moving_variance)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_is_bit_exact(tmp_path, optimizer):
    x, y = classification_data(n=200)

    def make():
        model = bn_model(dtype="float32", seed=6, momentum=0.9, dropout=True)
        model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    uninterrupted = make()
    uninterrupted.fit(x, y, epochs=3, batch_size=32, verbose=0, validation_split=0.2)
    first = make()
    first.fit(x, y, epochs=2, batch_size=32, verbose=0, validation_split=0.2)
    path = tmp_path / "model.npz"
    first.save(path)
    resumed = load_model(path)
    resumed.fit(x, y, epochs=3, batch_size=32, verbose=0, validation_split=0.2,
                initial_epoch=resumed.epochs_completed)
    for a, b in zip(uninterrupted.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)
    for name, value in uninterrupted.layers[1].get_state_arrays().items():
        assert np.array_equal(resumed.layers[1].get_state_arrays()[name], value)
    for key, values in resumed.history.history.items():  # the resumed epoch, validation included
        assert values == uninterrupted.history.history[key][-1:]
    assert not np.allclose(resumed.layers[1].moving_variance, 1.0)  # the state did move


# ------------------------------------------------------------------ errors
def test_argument_errors():
    for bad in (-0.1, 1.5, float("nan"), "0.9", True, None):
        with pytest.raises(ValueError, match="momentum"):
            BatchNormalization(momentum=bad)
    for bad in (0, -1e-3, float("inf"), float("nan"), "1e-3", False):
        with pytest.raises(ValueError, match="epsilon"):
            BatchNormalization(epsilon=bad)
    for bad in (0, 2, -2, 1.0, True, "last", (1, 2), None):
        with pytest.raises(ValueError, match="axis"):
            BatchNormalization(axis=bad)
    for argument in ("center", "scale"):
        with pytest.raises(TypeError, match=argument):
            BatchNormalization(**{argument: 1})
    with pytest.raises(ValueError, match="gamma_initializer"):
        BatchNormalization(gamma_initializer="nope")
    model = Sequential()
    with pytest.raises(ValueError, match=r"axis=1 is not the last axis.*\(4, 5, 3\)"):
        model.add(BatchNormalization(axis=1, input_shape=(4, 5, 3)))


# ------------------------------------------------------------------ images (batch, h, w, c)
def test_images_are_normalized_per_channel_over_batch_height_and_width():
    rng = np.random.default_rng(11)
    x = rng.normal(0.5, 2.0, size=(3, 4, 5, 2))
    layer = BatchNormalization(momentum=0.5, dtype="float64")
    layer(x[:1], training=False)
    layer.weights["gamma"][...] = [1.5, -0.7]
    layer.weights["beta"][...] = [0.2, -0.4]
    y = layer(x, training=True)
    rows = x.reshape(-1, 2)
    expected, _, mean, var = np_batch_norm(rows, np.array([1.5, -0.7]), np.array([0.2, -0.4]), 1e-3)
    np.testing.assert_allclose(y, expected.reshape(x.shape), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.moving_mean, 0.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, 0.5 + 0.5 * var, rtol=1e-12)
    assert layer.count_non_trainable_params() == 4 and layer.count_params() == 4
    np.testing.assert_allclose(layer(x, training=False),
                               np_inference(rows, layer.moving_mean, layer.moving_variance, np.array([1.5, -0.7]),
                                            np.array([0.2, -0.4]), 1e-3).reshape(x.shape), rtol=1e-12)


def test_image_gradients_match_finite_differences():
    rng = np.random.default_rng(12)
    x = rng.normal(0.0, 1.5, size=(2, 3, 4, 3))
    layer = BatchNormalization(axis=3, dtype="float64")
    layer(x[:1], training=False)
    layer.weights["gamma"][...] = rng.uniform(0.5, 1.5, size=3)
    layer.weights["beta"][...] = rng.uniform(-1, 1, size=3)
    r = rng.standard_normal(x.shape)

    def loss():
        return np.sum(r * layer.forward(x, training=True))

    layer.forward(x, training=True)
    dx = layer.backward(r.copy()).copy()
    assert dx.shape == x.shape
    grads = {k: v.copy() for k, v in layer.gradients.items()}
    check_gradient(loss, x, dx, what="BatchNormalization images d/dx")
    check_gradient(loss, layer.weights["gamma"], grads["gamma"], what="BatchNormalization images d/dgamma")
    check_gradient(loss, layer.weights["beta"], grads["beta"], what="BatchNormalization images d/dbeta")
