"""Learning-rate schedules: each formula at several steps, staircase, validation; and SGD(decay=d)
uses lr / (1 + d t) at step t (t = updates already applied)."""
import math

import numpy as np
import pytest

from helpers import FakeStore, numpy_backend  # noqa: F401 (autouse fixture)

from tensornet import schedules
from tensornet.optimizers import SGD, Adam

STEPS = [0, 1, 2, 5, 9, 10, 11, 99, 100, 1000]


def test_constant():
    s = schedules.Constant(0.3)
    assert [s(t) for t in STEPS] == [0.3] * len(STEPS)
    assert isinstance(schedules.Constant(1)(0), float)


@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_decay(staircase):
    s = schedules.InverseTimeDecay(0.5, 10, 0.3, staircase=staircase)
    for t in STEPS:
        p = math.floor(t / 10) if staircase else t / 10
        np.testing.assert_allclose(s(t), 0.5 / (1 + 0.3 * p), rtol=1e-15)
    if staircase:
        assert s(0) == s(9) == 0.5 and s(10) == 0.5 / 1.3
    else:
        np.testing.assert_allclose(s(5), 0.5 / 1.15, rtol=1e-15)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay(staircase):
    s = schedules.ExponentialDecay(0.1, 4, 0.5, staircase=staircase)
    for t in STEPS:
        p = math.floor(t / 4) if staircase else t / 4
        np.testing.assert_allclose(s(t), 0.1 * 0.5 ** p, rtol=1e-14)
    np.testing.assert_allclose(s(8), 0.025, rtol=1e-15)
    if not staircase:
        np.testing.assert_allclose(s(2), 0.1 * math.sqrt(0.5), rtol=1e-15)
    else:
        assert s(3) == 0.1


def test_step_decay():
    s = schedules.StepDecay(0.2, 3, gamma=0.5)
    expected = {0: 0.2, 1: 0.2, 2: 0.2, 3: 0.1, 5: 0.1, 6: 0.05, 9: 0.025, 10: 0.025}
    for t, lr in expected.items():
        np.testing.assert_allclose(s(t), lr, rtol=1e-15)
    assert schedules.StepDecay(1.0, 2)(4) == pytest.approx(0.01)  # default gamma 0.1


def test_cosine_decay():
    s = schedules.CosineDecay(0.4, 100, alpha=0.1)
    for t in STEPS:
        frac = min(t, 100) / 100
        np.testing.assert_allclose(s(t), 0.4 * (0.9 * 0.5 * (1 + math.cos(math.pi * frac)) + 0.1), rtol=1e-14)
    np.testing.assert_allclose(s(0), 0.4, rtol=1e-15)
    np.testing.assert_allclose(s(50), 0.4 * (0.45 + 0.1), rtol=1e-14)
    np.testing.assert_allclose(s(100), 0.04, rtol=1e-14)
    assert s(1000) == s(100)  # flat after decay_steps
    np.testing.assert_allclose(schedules.CosineDecay(1.0, 10)(10), 0.0, atol=1e-16)


def test_lambda_schedule_and_get():
    s = schedules.get(lambda t: 0.1 * 0.9 ** t)
    assert isinstance(s, schedules.LambdaSchedule)
    np.testing.assert_allclose([s(t) for t in range(4)], [0.1, 0.09, 0.081, 0.0729], rtol=1e-14)
    assert isinstance(schedules.get(0.5), schedules.Constant) and schedules.get(0.5)(7) == 0.5
    c = schedules.Constant(0.2)
    assert schedules.get(c) is c
    with pytest.raises(TypeError, match="learning_rate"):
        schedules.get("0.1")
    with pytest.raises(TypeError, match="callable"):
        schedules.LambdaSchedule(3)


def test_validation_errors():
    with pytest.raises(ValueError, match="initial_learning_rate must be >= 0"):
        schedules.InverseTimeDecay(-0.1, 10, 0.5)
    with pytest.raises(ValueError, match="decay_steps must be > 0"):
        schedules.InverseTimeDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="decay_rate must be >= 0"):
        schedules.InverseTimeDecay(0.1, 10, -0.5)
    with pytest.raises(ValueError, match="decay_rate must be > 0"):
        schedules.ExponentialDecay(0.1, 10, 0.0)
    with pytest.raises(ValueError, match="decay_steps must be > 0"):
        schedules.ExponentialDecay(0.1, -1, 0.5)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        schedules.StepDecay(0.1, 0)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        schedules.StepDecay(0.1, 2, gamma=-1)
    with pytest.raises(ValueError, match="decay_steps must be > 0"):
        schedules.CosineDecay(0.1, 0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        schedules.CosineDecay(0.1, 10, alpha=-0.1)
    with pytest.raises(ValueError, match="learning_rate must be a finite number"):
        schedules.Constant(float("nan"))
    with pytest.raises(ValueError, match="finite"):
        schedules.Constant(True)
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        schedules.Constant(-1)


def test_config_round_trip():
    for s in (schedules.Constant(0.1), schedules.InverseTimeDecay(0.1, 5, 0.5, staircase=True),
              schedules.ExponentialDecay(0.2, 3, 0.9), schedules.StepDecay(0.3, 4, 0.2),
              schedules.CosineDecay(0.4, 50, 0.05)):
        again = schedules.from_config(s.get_config())
        assert type(again) is type(s)
        assert [again(t) for t in STEPS] == [s(t) for t in STEPS]
    with pytest.raises(ValueError, match="callable"):
        schedules.from_config(schedules.LambdaSchedule(lambda t: 1.0).get_config())


@pytest.mark.parametrize("decay", [0.0, 1e-3, 0.1, 1, 2.5])
def test_sgd_decay_is_inverse_time(decay):
    opt = SGD(lr=0.4, decay=decay)
    store = FakeStore(np.zeros(3), np.ones(3))
    opt.build(store)
    total = 0.0
    for t in range(12):
        assert opt.iterations == t
        np.testing.assert_allclose(opt.learning_rate, 0.4 / (1 + decay * t), rtol=1e-15)
        used = opt.apply(store)
        np.testing.assert_allclose(used, 0.4 / (1 + decay * t), rtol=1e-15)
        total += used
    # plain SGD with g = 1: w = -sum_t lr_t
    np.testing.assert_allclose(store.params, -total, rtol=1e-14)
    np.testing.assert_allclose(total, sum(0.4 / (1 + decay * t) for t in range(12)), rtol=1e-14)
    if decay:
        assert isinstance(opt.schedule, schedules.InverseTimeDecay) and opt.schedule.decay_steps == 1
    else:
        assert isinstance(opt.schedule, schedules.Constant)


def test_decay_on_other_optimizers_and_schedule_objects():
    opt = Adam(learning_rate=0.01, decay=0.5)
    np.testing.assert_allclose([opt.schedule(t) for t in range(4)], [0.01, 0.01 / 1.5, 0.005, 0.01 / 2.5])
    opt = SGD(learning_rate=schedules.CosineDecay(1.0, 4))
    store = FakeStore(np.zeros(1), np.ones(1))
    opt.build(store)
    used = [opt.apply(store) for _ in range(6)]
    np.testing.assert_allclose(used, [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5,
                                      0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0, 0.0], atol=1e-15)
