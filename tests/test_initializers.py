"""Initializers: bounds and standard deviations checked statistically on large draws, fans,
seeded reproducibility."""
import math

import numpy as np
import pytest

from helpers import numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet import initializers
from tensornet.initializers import fans
from tensornet.layers import Dense
from tensornet.models import Sequential

ops = numpy_ops()
SHAPE = (400, 300)  # 120,000 draws: the sample std is within ~0.2% (1 sigma) of the true one
FAN_IN, FAN_OUT = SHAPE
TRUNC = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def draw(name, shape=SHAPE, seed=0, dtype="float64", **kwargs):
    init = initializers.get(name) if not kwargs else {
        "random_normal": initializers.RandomNormal, "random_uniform": initializers.RandomUniform}[name](**kwargs)
    return init(ops, ops.rng(seed), shape, dtype)


UNIFORM = {
    "glorot_uniform": math.sqrt(6 / (FAN_IN + FAN_OUT)),
    "he_uniform": math.sqrt(6 / FAN_IN),
    "lecun_uniform": math.sqrt(3 / FAN_IN),
}
NORMAL = {
    "glorot_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "he_normal": math.sqrt(2 / FAN_IN),
    "lecun_normal": math.sqrt(1 / FAN_IN),
}


@pytest.mark.parametrize("name", list(UNIFORM))
def test_uniform_variance_scaling_bounds_and_std(name):
    limit = UNIFORM[name]
    w = draw(name)
    assert w.shape == SHAPE and w.dtype == np.float64
    assert np.max(np.abs(w)) <= limit
    assert np.max(w) > 0.999 * limit and np.min(w) < -0.999 * limit  # the whole range is used
    np.testing.assert_allclose(w.std(), limit / math.sqrt(3), rtol=0.01)
    assert abs(w.mean()) < 5 * limit / math.sqrt(3) / math.sqrt(w.size)
    # flat histogram: each tenth of [-l, l] holds 10% +- 5 sigma
    counts, _ = np.histogram(w, bins=10, range=(-limit, limit))
    sigma = math.sqrt(w.size * 0.1 * 0.9)
    assert np.all(np.abs(counts - w.size / 10) < 5 * sigma)


@pytest.mark.parametrize("name", list(NORMAL))
def test_truncated_normal_variance_scaling_std_and_bounds(name):
    s = NORMAL[name]
    w = draw(name)
    np.testing.assert_allclose(w.std(), s, rtol=0.01)  # the truncation is corrected for
    bound = 2 * s / TRUNC  # redrawn beyond two standard deviations of the untruncated normal
    assert np.max(np.abs(w)) <= bound
    assert np.max(np.abs(w)) > 0.99 * bound
    assert abs(w.mean()) < 5 * s / math.sqrt(w.size)


def test_random_normal_and_uniform():
    w = draw("random_normal")
    np.testing.assert_allclose(w.std(), 0.05, rtol=0.01)
    assert abs(w.mean()) < 5 * 0.05 / math.sqrt(w.size)
    assert np.max(np.abs(w)) > 4 * 0.05  # not truncated
    w = draw("random_normal", mean=1.0, stddev=2.0)
    np.testing.assert_allclose([w.mean(), w.std()], [1.0, 2.0], rtol=0.01)
    w = draw("random_uniform")
    assert np.min(w) >= -0.05 and np.max(w) <= 0.05
    np.testing.assert_allclose(w.std(), 0.1 / math.sqrt(12), rtol=0.01)
    w = draw("random_uniform", minval=2.0, maxval=3.0)
    assert np.min(w) >= 2.0 and np.max(w) <= 3.0 and np.min(w) < 2.001 and np.max(w) > 2.999
    np.testing.assert_allclose(w.mean(), 2.5, rtol=1e-3)


def test_zeros_and_ones():
    for dtype in ("float32", "float64"):
        z, o = draw("zeros", (3, 4), dtype=dtype), draw("ones", (5,), dtype=dtype)
        assert z.dtype == np.dtype(dtype) and o.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(z, np.zeros((3, 4)))
        np.testing.assert_array_equal(o, np.ones(5))


@pytest.mark.parametrize("name", initializers.NAMES)
def test_seeded_reproducibility_and_dtype(name):
    a = draw(name, (50, 40), seed=11, dtype="float32")
    b = draw(name, (50, 40), seed=11, dtype="float32")
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    if name not in ("zeros", "ones"):
        c = draw(name, (50, 40), seed=12, dtype="float32")
        assert not np.array_equal(a, c)
        # float32 draws are the float64 draws rounded
        np.testing.assert_allclose(a, draw(name, (50, 40), seed=11, dtype="float64"), rtol=1e-6, atol=1e-9)


def test_fans():
    assert fans((3, 4)) == (3, 4)
    assert fans((7,)) == (7, 7)
    assert fans(()) == (1, 1)
    assert fans((3, 3, 16, 32)) == (9 * 16, 9 * 32)  # receptive field included, as in Keras
    # the fans actually used: a (20, 50, 40) kernel has fan_in 20 * 50, fan_out 20 * 40
    w = initializers.GlorotUniform()(ops, ops.rng(0), (20, 50, 40), "float64")
    limit = math.sqrt(6 / (20 * 50 + 20 * 40))
    assert np.max(np.abs(w)) <= limit and np.max(np.abs(w)) > 0.99 * limit
    w = initializers.HeNormal()(ops, ops.rng(0), (10000,), "float64")  # 1-D: fan_in = 10000
    np.testing.assert_allclose(w.std(), math.sqrt(2 / 10000), rtol=0.03)


def test_dense_uses_its_initializers_in_a_seeded_model():
    def model(seed):
        m = Sequential([Dense(200, input_shape=(300,), kernel_initializer="he_normal", bias_initializer="ones"),
                        Dense(10, kernel_initializer=initializers.RandomUniform(-0.2, 0.2))], seed=seed)
        m.build()
        return m.get_weights()

    k1, b1, k2, b2 = model(5)
    np.testing.assert_allclose(k1.std(), math.sqrt(2 / 300), rtol=0.02)
    np.testing.assert_array_equal(b1, 1.0)
    assert np.max(np.abs(k2)) <= 0.2 and np.max(np.abs(k2)) > 0.19
    np.testing.assert_array_equal(b2, 0.0)
    for a, b in zip(model(5), model(5)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model(6)[0], k1)


def test_get_and_errors():
    for name in initializers.NAMES:
        init = initializers.get(name)
        assert isinstance(init, initializers.Initializer) and init.name == name
    custom = initializers.RandomNormal(0.0, 1.0)
    assert initializers.get(custom) is custom
    again = initializers.from_config(custom.get_config())
    np.testing.assert_array_equal(again(ops, ops.rng(1), (5,)), custom(ops, ops.rng(1), (5,)))
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        initializers.get("glorot")
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(1.0, "fan_sum", "uniform")
    with pytest.raises(ValueError, match="distribution"):
        initializers.VarianceScaling(1.0, "fan_in", "normal")
