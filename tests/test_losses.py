"""Losses: values against NumPy formulas written out by hand, gradients against central
finite differences of the batch-mean loss (float64)."""
import numpy as np
import pytest

from helpers import check_gradient, numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

import tensornet as tn
from tensornet import losses
from tensornet.backend import EPSILON

ops = numpy_ops()
N, C = 6, 4


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z):
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# -------------------------------------------------------------------- by-hand batch means
def mse_hand(p, t):
    return np.mean(np.mean((t - p) ** 2, axis=-1))


def mae_hand(p, t):
    return np.mean(np.mean(np.abs(t - p), axis=-1))


def bce_hand(p, t):
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return np.mean(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)), axis=-1))


def bce_logits_hand(z, t):
    # the textbook form on sigmoid probabilities (fine for moderate z)
    p = sigmoid(z)
    return np.mean(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)), axis=-1))


def cce_hand(p, t):
    return np.mean(-np.sum(t * np.log(np.clip(p, EPSILON, 1 - EPSILON)), axis=-1))


def cce_logits_hand(z, t):
    return np.mean(-np.sum(t * np.log(softmax(z)), axis=-1))


def scce_hand(p, labels):
    return np.mean(-np.log(np.clip(p[np.arange(len(labels)), labels], EPSILON, 1 - EPSILON)))


def scce_logits_hand(z, labels):
    return np.mean(-np.log(softmax(z)[np.arange(len(labels)), labels]))


# -------------------------------------------------------------------- data
def probs_binary(rng, shape=(N, 3)):
    return rng.uniform(0.05, 0.95, size=shape)


def targets_binary(rng, shape=(N, 3), soft=False):
    return rng.uniform(0, 1, size=shape) if soft else rng.integers(0, 2, size=shape).astype(float)


def probs_categorical(rng):
    # strictly inside (eps, 1 - eps): rows of a softmax of moderate logits
    return softmax(rng.standard_normal((N, C)))


def onehot(rng):
    return np.eye(C)[rng.integers(0, C, size=N)]


def soft_targets(rng):
    t = rng.uniform(0.05, 1.0, size=(N, C))
    return t / t.sum(axis=-1, keepdims=True)


def batch_mean(loss, pred, target):
    return float(loss.total(ops, pred, target)) / pred.shape[0]


def check_loss(loss, pred, target, hand):
    """Value against the by-hand formula, gradient against finite differences of the batch mean."""
    value = batch_mean(loss, pred, target)
    np.testing.assert_allclose(value, hand(pred, target), rtol=1e-12, atol=1e-14)
    analytic = loss.gradient(ops, pred.copy(), target)
    assert analytic.shape == pred.shape and analytic.dtype == pred.dtype
    check_gradient(lambda: batch_mean(loss, pred, target), pred, analytic, what=repr(loss))
    # ``out=`` writes the same numbers into a given buffer
    out = np.full_like(pred, np.nan)
    assert loss.gradient(ops, pred.copy(), target, out=out) is out
    np.testing.assert_allclose(out, analytic, rtol=0, atol=0)


# -------------------------------------------------------------------- per-loss tests
@pytest.mark.parametrize("name", ["mse", "mean_squared_error"])
def test_mse(name):
    rng = np.random.default_rng(0)
    loss = losses.get(name)
    assert isinstance(loss, losses.MeanSquaredError)
    p, t = rng.standard_normal((N, 3)), rng.standard_normal((N, 3))
    check_loss(loss, p, t, mse_hand)
    np.testing.assert_allclose(loss.gradient(ops, p, t), 2 * (p - t) / p.size, rtol=1e-14)


@pytest.mark.parametrize("name", ["mae", "mean_absolute_error"])
def test_mae(name):
    rng = np.random.default_rng(1)
    loss = losses.get(name)
    assert isinstance(loss, losses.MeanAbsoluteError)
    t = rng.standard_normal((N, 3))
    p = t + rng.uniform(0.01, 1.0, size=t.shape) * rng.choice([-1, 1], size=t.shape)  # p != t
    check_loss(loss, p, t, mae_hand)
    np.testing.assert_allclose(loss.gradient(ops, p, t), np.sign(p - t) / p.size, rtol=1e-14)


@pytest.mark.parametrize("name", ["binary_crossentropy", "bce"])
@pytest.mark.parametrize("soft", [False, True])
def test_binary_crossentropy_probabilities(name, soft):
    rng = np.random.default_rng(2)
    loss = losses.get(name)
    assert isinstance(loss, losses.BinaryCrossentropy) and not loss.from_logits
    p, t = probs_binary(rng), targets_binary(rng, soft=soft)
    check_loss(loss, p, t, bce_hand)
    np.testing.assert_allclose(loss.gradient(ops, p, t), (p - t) / (p * (1 - p)) / p.size, rtol=1e-12)


@pytest.mark.parametrize("soft", [False, True])
def test_binary_crossentropy_from_logits(soft):
    rng = np.random.default_rng(3)
    loss = losses.BinaryCrossentropy(from_logits=True)
    z, t = rng.uniform(-5, 5, size=(N, 3)), targets_binary(rng, soft=soft)
    check_loss(loss, z, t, bce_logits_hand)
    np.testing.assert_allclose(loss.gradient(ops, z, t), (sigmoid(z) - t) / z.size, rtol=1e-12)


def test_binary_crossentropy_from_logits_stable_form_for_huge_logits():
    z = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    t = np.array([[1.0, 0.0, 1.0, 1.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = batch_mean(losses.BinaryCrossentropy(from_logits=True), z, t)
    per = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    np.testing.assert_allclose(value, per.mean(), rtol=1e-14)
    np.testing.assert_allclose(per[0], [1000.0, 1.9287498479639178e-22, np.log(2), 1.9287498479639178e-22,
                                        1000.0], rtol=1e-12)


def test_binary_crossentropy_clip_on_probabilities():
    """p = 0 or 1 is clipped to [eps, 1 - eps]: a finite loss, and zero gradient where clipped."""
    p = np.array([[0.0, 1.0, 0.5]])
    t = np.array([[1.0, 0.0, 1.0]])
    loss = losses.BinaryCrossentropy()
    value = batch_mean(loss, p, t)
    expected = np.mean([-np.log(EPSILON), -np.log(EPSILON), -np.log(0.5)])
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    grad = loss.gradient(ops, p, t)
    np.testing.assert_array_equal(grad[0, :2], [0.0, 0.0])
    np.testing.assert_allclose(grad[0, 2], (0.5 - 1) / 0.25 / 3, rtol=1e-14)


@pytest.mark.parametrize("name", ["categorical_crossentropy", "cce"])
@pytest.mark.parametrize("targets", ["onehot", "soft"])
def test_categorical_crossentropy_probabilities(name, targets):
    rng = np.random.default_rng(4)
    loss = losses.get(name)
    assert isinstance(loss, losses.CategoricalCrossentropy) and not loss.from_logits
    p = probs_categorical(rng)
    t = onehot(rng) if targets == "onehot" else soft_targets(rng)
    check_loss(loss, p, t, cce_hand)
    np.testing.assert_allclose(loss.gradient(ops, p, t), -t / p / N, rtol=1e-12)


@pytest.mark.parametrize("targets", ["onehot", "soft", "unnormalised"])
def test_categorical_crossentropy_from_logits(targets):
    rng = np.random.default_rng(5)
    loss = losses.CategoricalCrossentropy(from_logits=True)
    z = rng.standard_normal((N, C)) * 2
    t = {"onehot": onehot, "soft": soft_targets,
         "unnormalised": lambda r: r.uniform(0, 1, size=(N, C))}[targets](rng)
    check_loss(loss, z, t, cce_logits_hand)
    expected = (softmax(z) * t.sum(axis=-1, keepdims=True) - t) / N
    np.testing.assert_allclose(loss.gradient(ops, z, t), expected, rtol=1e-12, atol=1e-16)


def test_categorical_crossentropy_from_logits_large_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [5000.0, 5001.0, 4999.0]])
    t = np.array([[0.0, 1.0, 0.0], [0.2, 0.5, 0.3]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = batch_mean(losses.CategoricalCrossentropy(from_logits=True), z, t)
    expected = np.mean(-np.sum(t * log_softmax(z), axis=-1))
    np.testing.assert_allclose(value, expected, rtol=1e-13)
    np.testing.assert_allclose(-log_softmax(z)[0, 1], 1000.0, rtol=1e-15)


def test_categorical_crossentropy_clip():
    p = np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
    t = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    loss = losses.CategoricalCrossentropy()
    np.testing.assert_allclose(batch_mean(loss, p, t), (-np.log(EPSILON) - np.log(0.5)) / 2, rtol=1e-6)
    grad = loss.gradient(ops, p, t)
    np.testing.assert_array_equal(grad[0], [0.0, 0.0, 0.0])  # the clip is active: no gradient
    np.testing.assert_allclose(grad[1], [0.0, 0.0, -1 / 0.5 / 2], rtol=1e-14)


@pytest.mark.parametrize("labels_dtype", ["int64", "int32"])
def test_sparse_categorical_crossentropy_probabilities(labels_dtype):
    rng = np.random.default_rng(6)
    loss = losses.get("sparse_categorical_crossentropy")
    assert loss.target_kind == "sparse"
    p = probs_categorical(rng)
    labels = rng.integers(0, C, size=N).astype(labels_dtype)
    check_loss(loss, p, labels, scce_hand)
    # equals categorical cross-entropy on the one-hot encoding, value and gradient
    t = np.eye(C)[labels]
    np.testing.assert_allclose(batch_mean(loss, p, labels), cce_hand(p, t), rtol=1e-14)
    np.testing.assert_allclose(loss.gradient(ops, p, labels), -t / p / N, rtol=1e-14)


def test_sparse_categorical_crossentropy_from_logits():
    rng = np.random.default_rng(7)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    z = rng.standard_normal((N, C)) * 2
    labels = rng.integers(0, C, size=N)
    check_loss(loss, z, labels, scce_logits_hand)
    np.testing.assert_allclose(loss.gradient(ops, z, labels), (softmax(z) - np.eye(C)[labels]) / N,
                               rtol=1e-12, atol=1e-16)


# -------------------------------------------------------------------- fused output losses
@pytest.mark.parametrize("targets", ["onehot", "soft", "sparse"])
def test_fused_softmax_cross_entropy(targets):
    """Loss = the from-logits loss; gradient w.r.t. the logits = finite differences of that loss
    = (p - t) / N (p * sum(t) - t for unnormalised soft targets)."""
    rng = np.random.default_rng(8)
    z = rng.standard_normal((N, C)) * 3
    sparse = targets == "sparse"
    if sparse:
        t = rng.integers(0, C, size=N)
        reference = losses.SparseCategoricalCrossentropy(from_logits=True)
        dense_t = np.eye(C)[t]
    else:
        t = onehot(rng) if targets == "onehot" else soft_targets(rng)
        reference = losses.CategoricalCrossentropy(from_logits=True)
        dense_t = t
    probs = softmax(z)
    grad = np.full_like(z, np.nan)
    value = ops.softmax_cross_entropy(z, probs, t, grad, sparse=sparse)
    np.testing.assert_allclose(float(value), float(reference.total(ops, z, t)), rtol=1e-14)
    np.testing.assert_allclose(float(value) / N, cce_logits_hand(z, dense_t), rtol=1e-12)
    np.testing.assert_allclose(grad, (probs - dense_t) / N, rtol=1e-12, atol=1e-17)
    check_gradient(lambda: batch_mean(reference, z, t), z, grad, what=f"fused softmax CE ({targets})")
    # and through the Loss objects' fused() entry point
    fused_loss = losses.SparseCategoricalCrossentropy() if sparse else losses.CategoricalCrossentropy()
    assert fused_loss.fused_activation("softmax") == "softmax"
    grad2 = np.empty_like(z)
    value2 = fused_loss.fused(ops, z, probs, t, grad2)
    np.testing.assert_allclose(float(value2), float(value), rtol=0)
    np.testing.assert_allclose(grad2, grad, rtol=0)
    np.testing.assert_allclose(float(fused_loss.fused_total(ops, z, t)), float(value), rtol=0)


def test_fused_softmax_cross_entropy_unnormalised_soft_targets():
    rng = np.random.default_rng(9)
    z = rng.standard_normal((N, C))
    t = rng.uniform(0, 1, size=(N, C))
    grad = np.empty_like(z)
    ops.softmax_cross_entropy(z, softmax(z), t, grad, sparse=False)
    reference = losses.CategoricalCrossentropy(from_logits=True)
    check_gradient(lambda: batch_mean(reference, z, t), z, grad, what="fused CE, unnormalised targets")


def test_fused_softmax_cross_entropy_extreme_logits_no_nan():
    z = np.array([[800.0, -800.0, 0.0], [0.0, 0.0, 1e4]])
    t = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    grad = np.empty_like(z)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = ops.softmax_cross_entropy(z, ops.softmax(z.copy()), t, grad)
    np.testing.assert_allclose(float(value), 1600.0, rtol=1e-14)
    np.testing.assert_allclose(grad, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-300)


@pytest.mark.parametrize("soft", [False, True])
def test_fused_sigmoid_binary_crossentropy(soft):
    rng = np.random.default_rng(10)
    z = rng.uniform(-6, 6, size=(N, 3))
    t = targets_binary(rng, soft=soft)
    probs = sigmoid(z)
    grad = np.full_like(z, np.nan)
    value = ops.sigmoid_binary_crossentropy(z, probs, t, grad)
    reference = losses.BinaryCrossentropy(from_logits=True)
    np.testing.assert_allclose(float(value), float(reference.total(ops, z, t)), rtol=1e-14)
    np.testing.assert_allclose(float(value) / N, bce_logits_hand(z, t), rtol=1e-12)
    np.testing.assert_allclose(grad, (probs - t) / z.size, rtol=1e-12, atol=1e-17)
    check_gradient(lambda: batch_mean(reference, z, t), z, grad, what="fused sigmoid BCE")
    bce = losses.BinaryCrossentropy()
    assert bce.fused_activation("sigmoid") == "sigmoid"
    assert losses.BinaryCrossentropy(from_logits=True).fused_activation("sigmoid") is None
    grad2 = np.empty_like(z)
    np.testing.assert_allclose(float(bce.fused(ops, z, probs, t, grad2)), float(value), rtol=0)
    np.testing.assert_allclose(grad2, grad, rtol=0)


def test_fused_forms_only_for_matching_activation():
    assert losses.CategoricalCrossentropy().fused_activation("sigmoid") is None
    assert losses.CategoricalCrossentropy(from_logits=True).fused_activation("softmax") is None
    assert losses.BinaryCrossentropy().fused_activation("softmax") is None
    assert losses.MeanSquaredError().fused_activation("softmax") is None
    with pytest.raises(NotImplementedError):
        losses.MeanSquaredError().fused(ops, None, None, None, None)


# -------------------------------------------------------------------- Loss.__call__
def test_call_gives_batch_mean_keras_order():
    rng = np.random.default_rng(11)
    p, t = rng.standard_normal((N, 3)), rng.standard_normal((N, 3))
    q, b = probs_binary(rng), targets_binary(rng)
    pc, tc = probs_categorical(rng), onehot(rng)
    labels = np.argmax(tc, axis=-1)
    z = rng.standard_normal((N, C))
    with tn.use_backend("numpy"):
        np.testing.assert_allclose(losses.mse(t, p), mse_hand(p, t), rtol=1e-12)
        np.testing.assert_allclose(losses.mean_squared_error(t, p), mse_hand(p, t), rtol=1e-12)
        np.testing.assert_allclose(losses.mae(t, p), mae_hand(p, t), rtol=1e-12)
        np.testing.assert_allclose(losses.binary_crossentropy(b, q), bce_hand(q, b), rtol=1e-12)
        np.testing.assert_allclose(losses.categorical_crossentropy(tc, pc), cce_hand(pc, tc), rtol=1e-12)
        np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, pc), scce_hand(pc, labels),
                                   rtol=1e-12)
        # Keras accepts float-typed integer labels and a (N, 1) label column
        np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels.astype(float)[:, None], pc),
                                   scce_hand(pc, labels), rtol=1e-12)
        np.testing.assert_allclose(losses.CategoricalCrossentropy(from_logits=True)(tc, z),
                                   cce_logits_hand(z, tc), rtol=1e-12)
        # a single-column output with a flat target vector
        np.testing.assert_allclose(losses.binary_crossentropy(b[:, 0], q[:, :1]), bce_hand(q[:, :1], b[:, :1]),
                                   rtol=1e-12)
        assert isinstance(losses.mse(t, p), float)


def test_call_on_1d_vectors_is_the_plain_mean_like_keras():
    """keras.losses.MeanSquaredError()([1, 2, 3], [1.5, 2, 3]) == 0.25 / 3."""
    with tn.use_backend("numpy"):
        np.testing.assert_allclose(losses.mse(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 3.0])), 0.25 / 3,
                                   rtol=1e-12)
        np.testing.assert_allclose(losses.mae(np.array([0.0, 0.0]), np.array([1.0, -3.0])), 2.0, rtol=1e-12)
        p, t = np.array([0.2, 0.9]), np.array([0.0, 1.0])
        np.testing.assert_allclose(losses.binary_crossentropy(t, p), -(np.log(0.8) + np.log(0.9)) / 2,
                                   rtol=1e-7)


def test_get_and_config_round_trip():
    for name in losses.NAMES:
        loss = losses.get(name)
        assert isinstance(loss, losses.Loss)
        again = losses.from_config(loss.get_config())
        assert type(again) is type(loss) and again.from_logits == loss.from_logits
    obj = losses.CategoricalCrossentropy(from_logits=True)
    assert losses.get(obj) is obj
    assert isinstance(losses.get(losses.MeanAbsoluteError), losses.MeanAbsoluteError)
    assert losses.from_config(obj.get_config()).from_logits is True
    with pytest.raises(TypeError, match="from_logits"):
        losses.BinaryCrossentropy(from_logits=1)
