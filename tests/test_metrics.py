"""Accuracy in its four kinds against counts done by hand, Keras' choice of kind, loss metrics."""
import numpy as np
import pytest

from helpers import numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet import losses, metrics
from tensornet.layers import Dense
from tensornet.models import Sequential

ops = numpy_ops()


def test_categorical_accuracy_by_hand():
    pred = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3], [0.0, 0.1, 0.9]])
    target = np.eye(3)[[1, 2, 2, 0, 2]]
    # argmax pred = [1, 0, 2, 1, 2] vs [1, 2, 2, 0, 2]: rows 0, 2, 4 correct
    assert int(ops.count_correct(pred, target, "categorical")) == 3
    acc = metrics.Accuracy("categorical")
    assert int(acc.batch_sum(ops, pred, target)) == 3 and acc.denominator(5, 3) == 5


def test_sparse_accuracy_by_hand():
    rng = np.random.default_rng(0)
    pred = rng.uniform(size=(50, 4))
    labels = rng.integers(0, 4, size=50)
    by_hand = sum(int(np.argmax(pred[i]) == labels[i]) for i in range(50))
    assert int(ops.count_correct(pred, labels, "sparse")) == by_hand
    assert int(ops.count_correct(pred, labels.reshape(-1, 1), "sparse")) == by_hand
    assert metrics.Accuracy("sparse").denominator(50, 4) == 50


def test_binary_accuracy_by_hand():
    pred = np.array([[0.9, 0.2], [0.5, 0.51], [0.49, 0.0], [0.7, 0.3]])
    target = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    # pred > 0.5: [[1,0],[0,1],[0,0],[1,0]] vs target: matches 1+1, 0+1, 1+0, 0+1 = 5 of 8
    assert int(ops.count_correct(pred, target, "binary")) == 5
    acc = metrics.Accuracy("binary")
    assert acc.denominator(4, 2) == 8  # element-wise, as Keras' binary_accuracy


def test_binary_logits_accuracy_threshold_at_zero():
    logits = np.array([[2.0], [-0.1], [0.0], [0.3], [-5.0]])
    target = np.array([[1.0], [0.0], [1.0], [0.0], [0.0]])
    # logit > 0: [1, 0, 0, 1, 0] vs [1, 0, 1, 0, 0]: 3 correct
    assert int(ops.count_correct(logits, target, "binary_logits")) == 3
    rng = np.random.default_rng(1)
    z = rng.standard_normal((100, 3))
    t = rng.integers(0, 2, size=(100, 3)).astype(float)
    probs = 1 / (1 + np.exp(-z))
    assert int(ops.count_correct(z, t, "binary_logits")) == int(ops.count_correct(probs, t, "binary")) \
        == int(np.sum((z > 0) == t))


def test_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        metrics.Accuracy("top5")
    with pytest.raises(ValueError, match="kind"):
        ops.count_correct(np.zeros((1, 2)), np.zeros((1, 2)), "top5")


def test_accuracy_kind_follows_loss_and_output():
    cce, bce = losses.CategoricalCrossentropy(), losses.BinaryCrossentropy()
    assert metrics.accuracy_kind(cce, 10) == "categorical"
    assert metrics.accuracy_kind(losses.SparseCategoricalCrossentropy(), 10) == "sparse"
    assert metrics.accuracy_kind(bce, 1) == "binary"
    assert metrics.accuracy_kind(bce, 3) == "binary"
    assert metrics.accuracy_kind(losses.BinaryCrossentropy(from_logits=True), 1) == "binary_logits"
    assert metrics.accuracy_kind(losses.MeanSquaredError(), 1) == "binary"
    assert metrics.accuracy_kind(losses.MeanSquaredError(), 4) == "categorical"
    assert metrics.get("acc", cce, 10).kind == "categorical"
    assert metrics.get("sparse_categorical_accuracy", cce, 10).kind == "sparse"
    assert metrics.get("categorical_accuracy", bce, 3).kind == "categorical"
    assert metrics.get("binary_accuracy", losses.BinaryCrossentropy(from_logits=True), 1).kind == "binary_logits"
    m = metrics.Accuracy("binary")
    assert metrics.get(m, cce, 3) is m
    assert isinstance(metrics.get("mae", cce, 3), metrics.LossMetric)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        metrics.get("f1", cce, 3)
    with pytest.raises(TypeError, match="metrics"):
        metrics.get(3, cce, 3)


def test_metrics_through_evaluate_match_by_hand_counts():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((37, 4))
    y = rng.integers(0, 2, size=(37, 2)).astype(float)
    model = Sequential([Dense(2, activation="sigmoid", input_shape=(4,))], dtype="float64", seed=0)
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=["accuracy", "binary_accuracy", "mae", "mean_squared_error"])
    kernel, bias = model.get_weights()
    p = 1 / (1 + np.exp(-(x @ kernel + bias)))
    loss, acc, bin_acc, mae, mse = model.evaluate(x, y, batch_size=5, verbose=0)
    assert acc == bin_acc == np.sum((p > 0.5) == y) / y.size
    np.testing.assert_allclose(mae, np.mean(np.abs(p - y)), rtol=1e-12)
    np.testing.assert_allclose(mse, np.mean((p - y) ** 2), rtol=1e-12)
    np.testing.assert_allclose(loss, np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))), rtol=1e-10)
