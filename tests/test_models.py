"""Sequential end to end: whole-model gradient checks in float64 over every parameter of the
flat buffer, and compile / summary / weights / fit / evaluate / predict checked against NumPy
computations done by hand."""
import math

import numpy as np
import pytest

from helpers import (check_gradient, model_analytic_gradient, model_batch_loss, numpy_backend,  # noqa: F401
                     numpy_ops)

import tensornet as tn
from tensornet import initializers, losses, metrics, optimizers
from tensornet.callbacks import History
from tensornet.layers import Activation, Dense, Dropout, Flatten, Layer
from tensornet.models import Sequential
from tensornet.optimizers import SGD
from tensornet.training.epoch import EpochTotals

ops = numpy_ops()


# ------------------------------------------------------------------ NumPy reference forward
def np_act(name, z, alpha=0.01):
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "softmax":
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    raise AssertionError(name)


def np_forward(weights, acts, x, logits=False):
    """Forward pass of a Dense stack computed by hand from ``get_weights()``."""
    h = np.asarray(x, dtype=np.float64)
    for i, act in enumerate(acts):
        z = h @ weights[2 * i].astype(np.float64) + weights[2 * i + 1].astype(np.float64)
        if logits and i == len(acts) - 1:
            return z
        h = np_act(act, z)
    return h


def log_softmax(z):
    s = z - z.max(-1, keepdims=True)
    return s - np.log(np.exp(s).sum(-1, keepdims=True))


def dense_stack(sizes, acts, dtype="float64", seed=0, input_dim=None):
    layers = []
    for i, (units, act) in enumerate(zip(sizes[1:], acts)):
        kwargs = {"input_shape": (sizes[0],)} if i == 0 else {}
        layers.append(Dense(units, activation=act, **kwargs))
    return Sequential(layers, dtype=dtype, seed=seed)


# ------------------------------------------------------------------ whole-model gradient checks
GRAD_CASES = {
    # name: (hidden activations + output activation, loss, target kind)
    "tanh-sigmoid-softmax/cce": (["tanh", "sigmoid", "softmax"], "categorical_crossentropy", "onehot"),
    "tanh-sigmoid-softmax/cce-soft": (["tanh", "sigmoid", "softmax"], "categorical_crossentropy", "soft"),
    "tanh-relu-softmax/sparse": (["tanh", "relu", "softmax"], "sparse_categorical_crossentropy", "sparse"),
    "relu-sigmoid-linear/mse": (["relu", "sigmoid", "linear"], "mse", "real"),
    "tanh-leaky-tanh/mae": (["tanh", "leaky_relu", "tanh"], "mae", "real"),
    "tanh-tanh-sigmoid/bce": (["tanh", "tanh", "sigmoid"], "binary_crossentropy", "binary"),
    "tanh-sigmoid-linear/cce-logits": (["tanh", "sigmoid", "linear"],
                                      losses.CategoricalCrossentropy(from_logits=True), "soft"),
    "tanh-tanh-sigmoid/cce-unfused": (["tanh", "tanh", "sigmoid"], "categorical_crossentropy", "soft"),
    "tanh-tanh-linear/sparse-logits": (["tanh", "tanh", "linear"],
                                      losses.SparseCategoricalCrossentropy(from_logits=True), "sparse"),
}


def make_targets(kind, rng, n, classes):
    if kind == "onehot":
        return np.eye(classes)[rng.integers(0, classes, size=n)]
    if kind == "soft":
        t = rng.uniform(0.05, 1, size=(n, classes))
        return t / t.sum(-1, keepdims=True)
    if kind == "sparse":
        return rng.integers(0, classes, size=n)
    if kind == "binary":
        return rng.integers(0, 2, size=(n, classes)).astype(float)
    return rng.uniform(-1, 1, size=(n, classes)) * 2


batch_loss, analytic_gradient = model_batch_loss, model_analytic_gradient


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_three_layer_model_gradient_matches_finite_differences(case):
    acts, loss, kind = GRAD_CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)))
    model = dense_stack([5, 4, 3, 3], acts, seed=1)
    model.compile(optimizer="sgd", loss=loss)
    x = rng.standard_normal((6, 5))
    y = make_targets(kind, rng, 6, 3)
    if kind == "sparse":
        y = y.astype(np.int64)
    if "relu" in acts or "leaky_relu" in acts:  # stay clear of the kink by far more than eps
        h = x
        for layer in model.layers:
            z = h @ layer.weights["kernel"] + layer.weights["bias"]
            if layer.activation.name in ("relu", "leaky_relu"):
                assert np.min(np.abs(z)) > 1e-4
            h = np_act(layer.activation.name, z)
    expect_fused = {"softmax": "softmax", "sigmoid": "sigmoid"}.get(acts[-1])
    if isinstance(loss, str) and loss in ("mse", "mae"):
        expect_fused = None
    if case.endswith("cce-unfused"):
        expect_fused = None  # sigmoid output + categorical CE: no fused form
    assert model.fused_output == expect_fused
    params, grads = model.store.groups["float64"]
    analytic = analytic_gradient(model, x, y)
    numeric = check_gradient(lambda: batch_loss(model, x, y), params, analytic, what=case)
    assert np.count_nonzero(numeric) > 0.5 * model.count_params()  # relu zeros some
    # padding between the views carries no gradient
    mask = np.zeros(params.size, bool)
    for layer, name, shape, dtype, offset in model.store.slots:
        mask[offset:offset + math.prod(shape)] = True
    assert np.all(analytic[~mask] == 0)


def test_training_step_with_zero_lr_leaves_gradient_and_reports_loss():
    """Through the backend's training step itself (lr = 0 so the weights stay put)."""
    rng = np.random.default_rng(3)
    model = dense_stack([5, 4, 3, 3], ["tanh", "sigmoid", "softmax"], seed=2)
    model.compile(optimizer=SGD(lr=0), loss="categorical_crossentropy", metrics=["accuracy"])
    x = rng.standard_normal((7, 5))
    y = make_targets("onehot", rng, 7, 3)
    params, grads = model.store.groups["float64"]
    before = params.copy()
    totals = EpochTotals(ops, model.metrics)
    step = model.ops.training_step(model, x.shape[0])
    assert step.path == "layered"
    pred, loss_sum = step(x, y)
    totals.add(loss_sum, pred, y)
    np.testing.assert_array_equal(params, before)
    logs = totals.results(3)
    np.testing.assert_allclose(logs["loss"], batch_loss(model, x, y), rtol=1e-13)
    check_gradient(lambda: batch_loss(model, x, y), params, grads.copy(), what="train_step gradient")


def test_one_sgd_step_is_w_minus_lr_times_finite_difference_gradient():
    rng = np.random.default_rng(4)
    model = dense_stack([5, 4, 3, 3], ["tanh", "sigmoid", "softmax"], seed=3)
    model.compile(optimizer=SGD(lr=0.5), loss="categorical_crossentropy")
    x = rng.standard_normal((8, 5))
    y = make_targets("onehot", rng, 8, 3)
    params = model.store.groups["float64"][0]
    from helpers import numerical_gradient
    g = numerical_gradient(lambda: batch_loss(model, x, y), params)
    before = params.copy()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(params, before - 0.5 * g, rtol=1e-8, atol=1e-10)


class Scale(Layer):
    """A custom layer through the public Layer protocol: y = x * s (one weight per feature)."""

    def build_weights(self, input_shape):
        self.add_weight("scale", input_shape, initializers.RandomUniform(0.5, 1.5))

    def forward(self, x, training=False):
        self._x = x
        return self.ops.multiply(x, self.weights["scale"], out=self.workspace("y", x.shape))

    def backward(self, dy, through_activation=True):
        self.gradients["scale"][...] = (dy * self._x).sum(axis=0)
        if not self.needs_input_grad:
            return None
        return dy * self.weights["scale"]


def test_custom_layer_subclass_gradient_in_model():
    rng = np.random.default_rng(5)
    model = Sequential([Scale(input_shape=(5,)), Dense(4, activation="tanh"), Scale(),
                        Dense(3, activation="softmax")], dtype="float64", seed=4)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert model.count_params() == 5 + 24 + 4 + 15
    x = rng.standard_normal((6, 5))
    y = make_targets("onehot", rng, 6, 3)
    params = model.store.groups["float64"][0]
    check_gradient(lambda: batch_loss(model, x, y), params, analytic_gradient(model, x, y),
                   what="custom Layer subclass")


# ------------------------------------------------------------------ compile
def test_compile_with_strings_and_objects():
    model = dense_stack([4, 3], ["softmax"], dtype="float32")
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(model.optimizer, optimizers.SGD) and model.optimizer.learning_rate == 0.01
    assert isinstance(model.loss, losses.CategoricalCrossentropy)
    assert isinstance(model.metrics[0], metrics.Accuracy) and model.metrics[0].kind == "categorical"
    assert model.fused_output == "softmax"
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    assert isinstance(model.optimizer, optimizers.Adam) and model.optimizer.learning_rate == 0.001
    assert isinstance(model.loss, losses.MeanSquaredError) and model.fused_output is None
    opt, loss = SGD(lr=0.3, momentum=0.9), losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=opt, loss=loss, metrics=["acc"])
    assert model.optimizer is opt and model.loss is loss and model.metrics[0].kind == "sparse"
    assert opt.state["float32"]["velocity"].shape == model.store.groups["float32"][0].shape
    model.compile(optimizer=optimizers.RMSprop, loss=losses.MeanAbsoluteError)
    assert isinstance(model.optimizer, optimizers.RMSprop) and isinstance(model.loss, losses.MeanAbsoluteError)
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="sgd")


def test_compile_then_fit_with_string_optimizer_trains_numerically():
    """optimizer='sgd' is SGD(lr=0.01): one full-batch step = w - 0.01 grad (by hand for a
    single softmax layer: dW = x^T (p - t) / N, db = sum(p - t) / N)."""
    rng = np.random.default_rng(6)
    model = dense_stack([4, 3], ["softmax"], seed=5)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = rng.standard_normal((10, 4))
    y = make_targets("onehot", rng, 10, 3)
    kernel, bias = model.get_weights()
    p = np_act("softmax", x @ kernel + bias)
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel, kernel - 0.01 * x.T @ (p - y) / 10, rtol=1e-12)
    np.testing.assert_allclose(new_bias, bias - 0.01 * (p - y).sum(0) / 10, rtol=1e-12)


# ------------------------------------------------------------------ summary
def test_summary_lists_layers_shapes_and_param_counts():
    model = Sequential(name="mlp")
    model.add(Flatten(input_shape=(2, 5), name="flat"))
    model.add(Dense(16, activation="relu", name="hidden"))
    model.add(Dropout(0.2, name="drop"))
    model.add(Dense(4, activation="softmax", name="out"))
    for built in (False, True):
        if built:
            model.build()
        lines = []
        model.summary(print_fn=lines.append)
        text = "\n".join(lines)
        assert 'Model: "mlp"' in text
        rows = {line.split()[0]: line for line in lines if line.startswith(" ") and "(" in line}
        assert "(Flatten)" in rows["flat"] and "(None, 10)" in rows["flat"] and rows["flat"].endswith(" 0")
        assert "(Dense)" in rows["hidden"] and "(None, 16)" in rows["hidden"]
        assert rows["hidden"].split()[-1] == str(10 * 16 + 16)
        assert "(Dropout)" in rows["drop"] and "(None, 16)" in rows["drop"] and rows["drop"].endswith(" 0")
        assert rows["out"].split()[-1] == str(16 * 4 + 4) and "(None, 4)" in rows["out"]
        assert f"Total params: {176 + 68:,}" in text
        assert f"Trainable params: {244:,}" in text
    assert model.count_params() == 244


def test_summary_thousands_separator():
    model = Sequential([Dense(512, input_shape=(784,)), Dense(10)])
    lines = []
    model.summary(print_fn=lines.append)
    assert "Total params: 407,050" in lines


# ------------------------------------------------------------------ weights
def test_get_set_weights_round_trip_and_errors():
    model = dense_stack([5, 4, 3], ["relu", "softmax"], dtype="float32", seed=0)
    model.build()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(5, 4), (4,), (4, 3), (3,)]
    assert all(w.dtype == np.float32 for w in weights)
    rng = np.random.default_rng(7)
    new = [rng.standard_normal(w.shape) for w in weights]  # float64 in, cast to float32
    model.set_weights(new)
    got = model.get_weights()
    for a, b in zip(got, new):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b.astype(np.float32))
    got[0][...] = 123.0  # copies: changing them leaves the model alone
    assert not np.any(model.get_weights()[0] == 123.0)
    with pytest.raises(ValueError, match=r"shape \(5, 4\).*got \(4, 5\)"):
        model.set_weights([new[0].T] + new[1:])
    with pytest.raises(ValueError, match="expects 4 arrays; got 3"):
        model.set_weights(new[:3])
    with pytest.raises(RuntimeError, match="built"):
        Sequential([Dense(3)]).get_weights()


# ------------------------------------------------------------------ fit / evaluate / predict
def classification_data(n=40, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    labels = rng.integers(0, classes, size=n)
    return x, tn.utils.to_categorical(labels, classes), labels


def small_classifier(seed=3, dtype="float32", dropout=False, optimizer=None):
    layers = [Dense(8, activation="tanh", input_shape=(5,))]
    if dropout:
        layers.append(Dropout(0.3))
    layers.append(Dense(3, activation="softmax"))
    model = Sequential(layers, dtype=dtype, seed=seed)
    model.compile(optimizer=optimizer or SGD(lr=0.1, momentum=0.9), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_fit_returns_history_with_per_epoch_lists():
    x, y, _ = classification_data()
    model = small_classifier()
    history = model.fit(x, y, epochs=4, batch_size=8, validation_data=(x[:10], y[:10]), verbose=0)
    assert isinstance(history, History) and model.history is history
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in history.history.values())
    assert history.epoch == [0, 1, 2, 3]
    assert all(isinstance(v, float) for values in history.history.values() for v in values)
    assert all(0 <= a <= 1 for a in history.history["accuracy"] + history.history["val_accuracy"])
    assert history.history["loss"][-1] < history.history["loss"][0]  # it learns
    # the last val_* are evaluate() on the validation data with the final weights
    val_loss, val_acc = model.evaluate(x[:10], y[:10], verbose=0)
    np.testing.assert_allclose(history.history["val_loss"][-1], val_loss, rtol=1e-6)
    assert history.history["val_accuracy"][-1] == val_acc


def test_fit_with_zero_lr_reports_evaluate_numbers():
    x, y, _ = classification_data(n=25)
    model = small_classifier(optimizer=SGD(lr=0.0))
    history = model.fit(x, y, epochs=2, batch_size=7, verbose=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(history.history["loss"], [loss, loss], rtol=1e-6)
    assert history.history["accuracy"] == [acc, acc]


def test_validation_split_takes_the_last_fraction():
    x, y, _ = classification_data(n=10)
    a = small_classifier(seed=9)
    b = small_classifier(seed=9)
    ha = a.fit(x, y, epochs=2, batch_size=3, validation_split=0.2, verbose=0)
    hb = b.fit(x[:8], y[:8], epochs=2, batch_size=3, validation_data=(x[8:], y[8:]), verbose=0)
    assert a.optimizer.iterations == 2 * math.ceil(8 / 3)
    assert ha.history == hb.history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    val_loss, val_acc = a.evaluate(x[8:], y[8:], verbose=0)
    np.testing.assert_allclose(ha.history["val_loss"][-1], val_loss, rtol=1e-6)
    first_two = a.evaluate(x[:2], y[:2], verbose=0)[0]
    assert not np.isclose(first_two, val_loss, rtol=1e-6)


def test_initial_epoch():
    x, y, _ = classification_data(n=20)
    model = small_classifier()
    history = model.fit(x, y, epochs=5, initial_epoch=3, batch_size=8, verbose=0)
    assert history.epoch == [3, 4]
    assert all(len(v) == 2 for v in history.history.values())
    assert model.optimizer.iterations == 2 * 3


def test_evaluate_matches_numpy_by_hand():
    x, y, labels = classification_data(n=23, seed=1)
    model = small_classifier(seed=4)
    model.fit(x, y, epochs=2, batch_size=5, verbose=0)
    weights = model.get_weights()
    z = np_forward(weights, ["tanh", "softmax"], x, logits=True)
    loss_by_hand = np.mean(-np.sum(y * log_softmax(z), axis=-1))
    acc_by_hand = np.mean(np.argmax(z, -1) == labels)
    for batch_size in (1, 4, 23, 100):
        loss, acc = model.evaluate(x, y, batch_size=batch_size, verbose=0)
        np.testing.assert_allclose(loss, loss_by_hand, rtol=2e-6)
        np.testing.assert_allclose(acc, acc_by_hand, rtol=0, atol=1e-12)
    # no metrics: a scalar loss, as Keras returns it
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), loss_by_hand, rtol=2e-6)
    # a loss metric reports that loss
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["mse", "accuracy"])
    loss, mse, acc = model.evaluate(x, y, verbose=0)
    p = np_act("softmax", z)
    np.testing.assert_allclose(mse, np.mean((p - y) ** 2), rtol=2e-6)
    np.testing.assert_allclose(acc, acc_by_hand, rtol=0)


def test_evaluate_sparse_and_binary_by_hand():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((30, 4))
    labels = rng.integers(0, 3, size=30)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))], dtype="float64", seed=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    z = np_forward(model.get_weights(), ["softmax"], x, logits=True)
    loss, acc = model.evaluate(x, labels, batch_size=7, verbose=0)
    np.testing.assert_allclose(loss, np.mean(-log_softmax(z)[np.arange(30), labels]), rtol=1e-12)
    assert acc == np.mean(z.argmax(-1) == labels)
    binary = Sequential([Dense(1, activation="sigmoid", input_shape=(4,))], dtype="float64", seed=0)
    binary.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    t = rng.integers(0, 2, size=30).astype(float)
    z = np_forward(binary.get_weights(), ["sigmoid"], x, logits=True)[:, 0]
    loss, acc = binary.evaluate(x, t, batch_size=8, verbose=0)
    np.testing.assert_allclose(loss, np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))),
                               rtol=1e-12)
    assert acc == np.mean((1 / (1 + np.exp(-z)) > 0.5) == t)


@pytest.mark.parametrize("batch_size", [1, 7, 32, 1000])
def test_predict_batched_equals_numpy_forward(batch_size):
    x, y, _ = classification_data(n=23, seed=2)
    model = small_classifier(seed=5, dropout=True)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    expected = np_forward(model.get_weights(), ["tanh", "softmax"], x)
    pred = model.predict(x, batch_size=batch_size)
    assert isinstance(pred, np.ndarray) and pred.shape == (23, 3) and pred.dtype == np.float32
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)


def test_seeded_reproducibility():
    x, y, _ = classification_data(n=30)
    a, b = small_classifier(seed=3, dropout=True), small_classifier(seed=3, dropout=True)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    c = small_classifier(seed=4, dropout=True)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    ha = a.fit(x, y, epochs=3, batch_size=7, verbose=0, validation_split=0.1)
    hb = b.fit(x, y, epochs=3, batch_size=7, verbose=0, validation_split=0.1)
    assert ha.history == hb.history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_last_partial_batch_is_trained_on():
    """N = 10, batch_size = 4: three SGD steps on rows 0-3, 4-7 and 8-9, checked by hand."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((10, 4))
    y = np.eye(3)[rng.integers(0, 3, size=10)]
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))], dtype="float64", seed=6)
    model.compile(optimizer=SGD(lr=0.2), loss="categorical_crossentropy")
    kernel, bias = model.get_weights()
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 3
    for start, stop in ((0, 4), (4, 8), (8, 10)):
        xb, yb = x[start:stop], y[start:stop]
        d = (np_act("softmax", xb @ kernel + bias) - yb) / len(xb)
        kernel, bias = kernel - 0.2 * xb.T @ d, bias - 0.2 * d.sum(0)
    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel, kernel, rtol=1e-12)
    np.testing.assert_allclose(new_bias, bias, rtol=1e-12)
    # shuffled: still ceil(N / batch_size) steps per epoch
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert model.optimizer.iterations == 3 + 6


def test_float32_stays_float32():
    x, y, _ = classification_data(n=21)
    model = small_classifier(dropout=True, optimizer=optimizers.Adam())
    assert model.dtype == "float32"
    assert list(model.store.groups) == ["float32"]
    params, grads = model.store.groups["float32"]
    assert params.dtype == np.float32 and grads.dtype == np.float32
    model.fit(x.astype(np.float64), y.astype(np.float64), epochs=1, batch_size=4, verbose=0)
    assert list(model.store.groups) == ["float32"]
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert all(b.dtype == np.float32 for b in model.optimizer.state["float32"].values())
    for layer in model.layers:
        for buffer in list(layer._workspaces.values()) + list(layer.weights.values()) + \
                list(layer.gradients.values()):
            assert buffer.dtype == np.float32, (layer, buffer.dtype)
        if getattr(layer, "_mask", None) is not None:
            assert layer._mask.dtype == np.float32
    for (tag, *_), buffer in [*model._trainer._buffers.items(), *model._buffers.items()]:
        assert buffer.dtype == np.float32, tag
    pred = model.predict(x.astype(np.float64))
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred, np_forward(model.get_weights(), ["tanh", "softmax"], x), rtol=1e-5,
                               atol=1e-6)


def test_parameters_live_in_one_flat_buffer():
    x, y, _ = classification_data(n=12)
    model = small_classifier(dropout=True)
    params, grads = model.store.groups["float32"]
    assert params.ndim == 1 and params.size >= model.count_params() == 5 * 8 + 8 + 8 * 3 + 3
    views = 0
    for layer in model.layers:
        for name, weight in layer.weights.items():
            assert np.shares_memory(weight, model.store.groups["float32"][0]), (layer.name, name)
            assert np.shares_memory(layer.gradients[name], model.store.groups["float32"][1])
            views += 1
    assert views == 4
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)  # the optimizer updates the views in place
    for layer in model.layers:
        for name, weight in layer.weights.items():
            assert np.shares_memory(weight, model.store.groups["float32"][0])
    params[:] = 0.0
    assert all(np.all(w == 0) for w in model.get_weights())
    model.set_weights([np.ones(w.shape) for w in model.get_weights()])
    total = sum(math.prod(s) for _, _, s, _, _ in model.store.slots)
    assert np.count_nonzero(params) == total  # padding stays zero


def test_add_after_build_keeps_weights():
    model = Sequential([Dense(4, input_shape=(3,))], dtype="float64", seed=0)
    model.build()
    before = model.get_weights()
    model.add(Dense(2))
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    assert after[2].shape == (4, 2)
    popped = model.pop()
    assert isinstance(popped, Dense) and len(model.get_weights()) == 2
    np.testing.assert_array_equal(model.get_weights()[0], before[0])


def test_model_with_activation_layer_and_binary_fit_learns():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((200, 2)).astype(np.float32)
    t = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    model = Sequential([Dense(8, input_shape=(2,)), Activation("tanh"), Dense(1), Activation("sigmoid")],
                       seed=0)
    model.compile(optimizer=SGD(lr=0.5, momentum=0.9), loss="binary_crossentropy", metrics=["accuracy"])
    assert model.fused_output == "sigmoid"
    history = model.fit(x, t, epochs=20, batch_size=20, verbose=0)
    assert history.history["accuracy"][-1] > 0.95
    loss, acc = model.evaluate(x, t, verbose=0)
    p = model.predict(x)[:, 0].astype(np.float64)
    assert acc == np.mean((p > 0.5) == t)
