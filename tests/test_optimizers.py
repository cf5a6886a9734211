"""Optimizers against their update equations computed by hand, step after step (the first
step included), on flat buffers with random non-zero gradients; clipping; argument checks."""
import math

import numpy as np
import pytest

from helpers import FakeStore, numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet import optimizers, schedules
from tensornet.layers import Dense
from tensornet.models import Sequential
from tensornet.optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, Nadam, RMSprop

ops = numpy_ops()
SIZE, STEPS = 11, 7


def trajectory(optimizer, steps=STEPS, size=SIZE, seed=0, grad_scale=None, dtype="float64"):
    """Run ``optimizer`` over ``steps`` random gradients on a fake flat store; return the
    initial weights, the gradients used and the weights/state after each step."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) * (1 if grad_scale is None else grad_scale[t])
             for t in range(steps)]
    store = FakeStore(w0.copy(), np.zeros(size, dtype))
    optimizer.build(store)
    weights, states, lrs = [], [], []
    for g in grads:
        store.grads[...] = g
        lrs.append(optimizer.apply(store))
        weights.append(store.params.copy())
        states.append({k: v.copy() for k, v in optimizer.state[dtype].items()})
    return w0, grads, weights, states, lrs


# ------------------------------------------------------------------ SGD
SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "nesterov": dict(lr=0.05, momentum=0.8, nesterov=True),
    "decay": dict(lr=0.2, decay=0.1),
    "weight_decay": dict(lr=0.1, weight_decay=0.01),
    "momentum+decay": dict(lr=0.1, momentum=0.9, decay=0.05),
    "momentum+weight_decay": dict(lr=0.1, momentum=0.9, weight_decay=1e-2),
    "all": dict(lr=0.1, momentum=0.9, nesterov=True, decay=0.05, weight_decay=1e-2),
    "integers": dict(lr=1, momentum=0, decay=0, weight_decay=0),
    "learning_rate alias": dict(learning_rate=0.07, momentum=0.5),
}


def sgd_by_hand(w0, grads, lr, momentum=0.0, nesterov=False, decay=0.0, weight_decay=0.0):
    w, v = w0.copy(), np.zeros_like(w0)
    out = []
    for t, g in enumerate(grads):
        lr_t = lr / (1 + decay * t)
        g = g + weight_decay * w
        v = momentum * v - lr_t * g
        if nesterov:
            w = w + momentum * v - lr_t * g
        elif momentum:
            w = w + v
        else:
            w = w - lr_t * g
        out.append((w.copy(), v.copy(), lr_t))
    return out


@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_matches_formula(case):
    kwargs = SGD_CASES[case]
    opt = SGD(**kwargs)
    w0, grads, weights, states, lrs = trajectory(opt)
    hand = dict(kwargs)
    if "learning_rate" in hand:
        hand["lr"] = hand.pop("learning_rate")
    expected = sgd_by_hand(w0, grads, **hand)
    for t, ((w, v, lr_t), got_w, state, got_lr) in enumerate(zip(expected, weights, states, lrs)):
        np.testing.assert_allclose(got_w, w, rtol=1e-13, atol=1e-15, err_msg=f"{case} step {t} weights")
        np.testing.assert_allclose(got_lr, lr_t, rtol=1e-15)
        if hand.get("momentum"):
            np.testing.assert_allclose(state["velocity"], v, rtol=1e-13, atol=1e-15,
                                       err_msg=f"{case} step {t} velocity")
        else:
            assert "velocity" not in state
    assert opt.iterations == STEPS


def test_sgd_first_step_explicit_numbers():
    """w = 1, g = 0.5, lr = 0.1, momentum = 0.9, weight_decay = 0.1, nesterov:
    g' = 0.6, v = -0.06, w = 1 + 0.9 * (-0.06) - 0.06 = 0.886."""
    store = FakeStore(np.array([1.0]), np.array([0.5]))
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    opt.build(store)
    opt.apply(store)
    np.testing.assert_allclose(store.params, [0.886], rtol=1e-15)
    np.testing.assert_allclose(opt.state["float64"]["velocity"], [-0.06], rtol=1e-15)


def test_sgd_float32_buffers():
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True, decay=0.01, weight_decay=1e-3)
    w0, grads, weights, states, _ = trajectory(opt, dtype="float32")
    assert weights[-1].dtype == np.float32 and states[-1]["velocity"].dtype == np.float32
    expected = sgd_by_hand(w0.astype(np.float64), [g.astype(np.float64) for g in grads], lr=0.1, momentum=0.9,
                           nesterov=True, decay=0.01, weight_decay=1e-3)
    np.testing.assert_allclose(weights[-1], expected[-1][0], rtol=1e-5, atol=1e-6)


def test_sgd_arguments():
    assert SGD().learning_rate == 0.01 and SGD().momentum == 0.0 and SGD().nesterov is False
    assert SGD(lr=0.3).learning_rate == 0.3 == SGD(learning_rate=0.3).lr
    assert SGD(lr=0.3, learning_rate=0.3).learning_rate == 0.3
    with pytest.raises(ValueError, match="lr and learning_rate"):
        SGD(lr=0.1, learning_rate=0.2)
    assert SGD(lr=1, momentum=0).learning_rate == 1.0
    assert SGD(momentum=1, decay=1).momentum == 1.0
    assert isinstance(SGD(lr=1).learning_rate, float)
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        SGD(lr=-0.1)
    with pytest.raises(ValueError, match="momentum must be >= 0"):
        SGD(momentum=-0.5)
    with pytest.raises(ValueError, match="decay must be >= 0"):
        SGD(decay=-1e-4)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        SGD(weight_decay=-1)
    with pytest.raises(ValueError, match="nesterov.*momentum"):
        SGD(nesterov=True)
    with pytest.raises(ValueError, match="nesterov.*momentum"):
        SGD(momentum=0, nesterov=True)
    with pytest.raises(TypeError, match="nesterov"):
        SGD(momentum=0.9, nesterov=1)
    for bad in (float("nan"), float("inf"), True, "0.1"):
        with pytest.raises((ValueError, TypeError)):
            SGD(momentum=bad)
    with pytest.raises(ValueError, match="finite"):
        SGD(lr=float("nan"))


def test_sgd_decay_with_schedule_rejected_and_schedule_accepted():
    with pytest.raises(ValueError, match="decay"):
        SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5), decay=0.1)
    opt = SGD(learning_rate=schedules.StepDecay(0.1, 2, 0.5))
    _, _, _, _, lrs = trajectory(opt, steps=5)
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.05, 0.05, 0.025])


# ------------------------------------------------------------------ adaptive optimizers by hand
def rmsprop_by_hand(w0, grads, lr=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    w, ms, mg, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0), np.zeros_like(w0)
    out = []
    for g in grads:
        ms = rho * ms + (1 - rho) * g ** 2
        if centered:
            mg = rho * mg + (1 - rho) * g
        step = lr * g / np.sqrt(ms - mg ** 2 + epsilon)
        if momentum:
            v = momentum * v + step
            w = w - v
        else:
            w = w - step
        out.append((w.copy(), {"mean_square": ms.copy(), "mean_grad": mg.copy(), "velocity": v.copy()}))
    return out


def adagrad_by_hand(w0, grads, lr=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
    w, acc = w0.copy(), np.full_like(w0, initial_accumulator_value)
    out = []
    for g in grads:
        acc = acc + g ** 2
        w = w - lr * g / np.sqrt(acc + epsilon)
        out.append((w.copy(), {"accumulator": acc.copy()}))
    return out


def adadelta_by_hand(w0, grads, lr=0.001, rho=0.95, epsilon=1e-7):
    w, eg, edx = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    out = []
    for g in grads:
        eg = rho * eg + (1 - rho) * g ** 2
        d = np.sqrt(edx + epsilon) / np.sqrt(eg + epsilon) * g
        edx = rho * edx + (1 - rho) * d ** 2
        w = w - lr * d
        out.append((w.copy(), {"accum_grad": eg.copy(), "accum_delta": edx.copy()}))
    return out


def adam_by_hand(w0, grads, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, decay=0.0):
    w, m, v, vmax = w0.copy(), np.zeros_like(w0), np.zeros_like(w0), np.zeros_like(w0)
    out = []
    for t, g in enumerate(grads):
        lr_t = lr / (1 + decay * t)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g ** 2
        alpha = lr_t * math.sqrt(1 - beta_2 ** (t + 1)) / (1 - beta_1 ** (t + 1))
        vmax = np.maximum(vmax, v)
        w = w - alpha * m / (np.sqrt(vmax if amsgrad else v) + epsilon)
        state = {"m": m.copy(), "v": v.copy()}
        if amsgrad:
            state["v_max"] = vmax.copy()
        out.append((w.copy(), state))
    return out


def adamax_by_hand(w0, grads, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    w, m, u = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    out = []
    for t, g in enumerate(grads):
        m = beta_1 * m + (1 - beta_1) * g
        u = np.maximum(beta_2 * u, np.abs(g))
        w = w - lr / (1 - beta_1 ** (t + 1)) * m / (u + epsilon)
        out.append((w.copy(), {"m": m.copy(), "u": u.copy()}))
    return out


def nadam_by_hand(w0, grads, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    def mu(t):
        return beta_1 * (1 - 0.5 * 0.96 ** (t + 1))

    w, m, v, prod = w0.copy(), np.zeros_like(w0), np.zeros_like(w0), 1.0
    out = []
    for t, g in enumerate(grads):
        mu_t, mu_next = mu(t), mu(t + 1)
        prod = prod * mu_t  # prod_{i <= t} mu_i
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g ** 2
        m_hat = mu_next * m / (1 - prod * mu_next) + (1 - mu_t) * g / (1 - prod)
        v_hat = v / (1 - beta_2 ** (t + 1))
        w = w - lr * m_hat / (np.sqrt(v_hat) + epsilon)
        out.append((w.copy(), {"m": m.copy(), "v": v.copy(), "mu_product": prod}))
    return out


ADAPTIVE_CASES = {
    "rmsprop": (RMSprop, {}, rmsprop_by_hand),
    "rmsprop momentum": (RMSprop, dict(learning_rate=0.01, rho=0.8, momentum=0.9), rmsprop_by_hand),
    "rmsprop centered": (RMSprop, dict(learning_rate=0.01, centered=True), rmsprop_by_hand),
    "rmsprop centered momentum": (RMSprop, dict(learning_rate=0.01, momentum=0.5, centered=True, epsilon=1e-3),
                                  rmsprop_by_hand),
    "adagrad": (Adagrad, {}, adagrad_by_hand),
    "adagrad custom": (Adagrad, dict(learning_rate=0.1, initial_accumulator_value=0.0, epsilon=1e-4),
                       adagrad_by_hand),
    "adadelta": (Adadelta, {}, adadelta_by_hand),
    "adadelta lr1": (Adadelta, dict(learning_rate=1.0, rho=0.9, epsilon=1e-6), adadelta_by_hand),
    "adam": (Adam, {}, adam_by_hand),
    "adam custom": (Adam, dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-5), adam_by_hand),
    "adam amsgrad": (Adam, dict(learning_rate=0.01, amsgrad=True), adam_by_hand),
    "adam decay": (Adam, dict(learning_rate=0.01, decay=0.1), adam_by_hand),
    "adamax": (Adamax, {}, adamax_by_hand),
    "adamax custom": (Adamax, dict(learning_rate=0.02, beta_1=0.7, beta_2=0.9), adamax_by_hand),
    "nadam": (Nadam, {}, nadam_by_hand),
    "nadam custom": (Nadam, dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99), nadam_by_hand),
}


@pytest.mark.parametrize("case", list(ADAPTIVE_CASES))
def test_adaptive_optimizer_matches_docstring_equations(case):
    cls, kwargs, by_hand = ADAPTIVE_CASES[case]
    opt = cls(**kwargs)
    # gradients shrinking over time make AMSGrad's v_max differ from v; the gradient sign flips
    # exercise Adamax's max(beta_2 u, |g|) both ways
    scale = [3.0, 1.0, 0.2, 2.0, 0.05, 0.5, 0.01]
    w0, grads, weights, states, _ = trajectory(opt, grad_scale=scale)
    hand = dict(kwargs)
    if "learning_rate" in hand:
        hand["lr"] = hand.pop("learning_rate")
    expected = by_hand(w0, grads, **hand)
    for t, ((w, state), got_w, got_state) in enumerate(zip(expected, weights, states)):
        np.testing.assert_allclose(got_w, w, rtol=1e-12, atol=1e-14, err_msg=f"{case}: weights, step {t}")
        for name, buffer in got_state.items():
            np.testing.assert_allclose(buffer, state[name], rtol=1e-12, atol=1e-14,
                                       err_msg=f"{case}: {name}, step {t}")
    assert opt.iterations == STEPS
    if "mu_product" in expected[-1][1]:
        np.testing.assert_allclose(opt.mu_product, expected[-1][1]["mu_product"], rtol=1e-15)
    if case == "adam amsgrad":
        assert np.any(states[-1]["v_max"] > states[-1]["v"])  # the max mattered


def test_nadam_mu_product_scalar_state():
    opt = Nadam(learning_rate=0.01)
    trajectory(opt, steps=4)
    expected = math.prod(0.9 * (1 - 0.5 * 0.96 ** (t + 1)) for t in range(4))
    np.testing.assert_allclose(opt.mu_product, expected, rtol=1e-15)
    assert opt.scalar_state() == {"mu_product": opt.mu_product}


def test_keras_defaults():
    assert RMSprop().learning_rate == 0.001 and RMSprop().rho == 0.9 and RMSprop().epsilon == 1e-7
    assert Adagrad().learning_rate == 0.001 and Adagrad().initial_accumulator_value == 0.1
    assert Adadelta().learning_rate == 0.001 and Adadelta().rho == 0.95
    adam = Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon, adam.amsgrad) == (0.001, 0.9, 0.999, 1e-7,
                                                                                          False)
    assert Adamax().learning_rate == 0.001 and Nadam().learning_rate == 0.001
    for name in optimizers.NAMES:
        assert optimizers.get(name).name == name


def test_adaptive_argument_ranges():
    with pytest.raises(ValueError, match="beta_1 must be < 1"):
        Adam(beta_1=1.0)
    with pytest.raises(ValueError, match="beta_2 must be >= 0"):
        Adamax(beta_2=-0.1)
    with pytest.raises(ValueError, match="rho must be <= 1"):
        RMSprop(rho=1.5)
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        Adagrad(epsilon=-1e-7)
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        Nadam(learning_rate=-1)
    with pytest.raises(ValueError, match="lr and learning_rate"):
        Adam(learning_rate=0.1, lr=0.2)
    assert Adam(lr=0.02).learning_rate == 0.02
    with pytest.raises(ValueError, match="clipnorm must be > 0"):
        SGD(clipnorm=0)
    with pytest.raises(ValueError, match="clipvalue must be > 0"):
        Adam(clipvalue=-1)
    with pytest.raises(ValueError, match="global_clipnorm"):
        RMSprop(global_clipnorm=float("inf"))


# ------------------------------------------------------------------ clipping
def test_clipnorm_per_weight_tensor():
    g = np.array([3.0, 4.0, 0.1, 0.2, 6.0, 8.0, 0.0])  # tensors: [3,4] norm 5; [0.1,0.2]; [6,8,0] norm 10
    store = FakeStore(np.zeros(7), g.copy(), splits=[2, 4, 7])
    opt = SGD(lr=1.0, clipnorm=2.0)
    opt.build(store)
    opt.apply(store)
    expected = np.concatenate([g[:2] * 2 / 5, g[2:4], g[4:] * 2 / 10])
    np.testing.assert_allclose(store.params, -expected, rtol=1e-15)


def test_global_clipnorm():
    g = np.array([3.0, 4.0, 0.0, 12.0])  # global norm 13
    store = FakeStore(np.zeros(4), g.copy(), splits=[2, 4])
    opt = SGD(lr=1.0, global_clipnorm=6.5)
    opt.build(store)
    opt.apply(store)
    np.testing.assert_allclose(store.params, -g * 0.5, rtol=1e-15)
    small = FakeStore(np.zeros(4), g.copy())
    opt = SGD(lr=1.0, global_clipnorm=20.0)  # under the threshold: untouched
    opt.build(small)
    opt.apply(small)
    np.testing.assert_allclose(small.params, -g, rtol=0)


def test_clipvalue():
    g = np.array([-3.0, -0.2, 0.0, 0.4, 7.0])
    store = FakeStore(np.ones(5), g.copy())
    opt = SGD(lr=0.5, clipvalue=0.3)
    opt.build(store)
    opt.apply(store)
    np.testing.assert_allclose(store.params, 1 - 0.5 * np.clip(g, -0.3, 0.3), rtol=1e-15)


def test_clipnorm_then_clipvalue_with_adam():
    rng = np.random.default_rng(3)
    w0, g = rng.standard_normal(6), rng.standard_normal(6) * 5
    store = FakeStore(w0.copy(), g.copy(), splits=[3, 6])
    opt = Adam(learning_rate=0.01, clipnorm=1.0, clipvalue=0.4)
    opt.build(store)
    opt.apply(store)
    clipped = np.concatenate([g[:3] * min(1, 1 / np.linalg.norm(g[:3])), g[3:] * min(1, 1 / np.linalg.norm(g[3:]))])
    clipped = np.clip(clipped, -0.4, 0.4)
    expected = adam_by_hand(w0, [clipped], lr=0.01)
    np.testing.assert_allclose(store.params, expected[0][0], rtol=1e-13)


# ------------------------------------------------------------------ on a real model store
@pytest.mark.parametrize("name", optimizers.NAMES)
def test_every_optimizer_on_model_store_padding_stays_zero_and_matches_fake_store(name):
    """Through a real ParameterStore (views with zero padding between them): padding stays
    zero, and the update of the real parameters equals the same optimizer on a plain buffer."""
    model = Sequential([Dense(3, input_shape=(5,)), Dense(2)], dtype="float64", seed=0)
    model.build()
    opt = optimizers.get(name)
    opt.build(model.store)
    params, grads = model.store.groups["float64"]
    used = np.zeros(params.size, bool)
    for _, _, shape, _, offset in model.store.slots:
        used[offset:offset + math.prod(shape)] = True
    assert not used.all()  # there is padding to check
    rng = np.random.default_rng(4)
    reference = optimizers.get(name)
    flat = FakeStore(params[used].copy(), np.zeros(used.sum()))
    reference.build(flat)
    for _ in range(4):
        g = rng.standard_normal(params.size) * used
        grads[...] = g
        flat.grads[...] = g[used]
        opt.apply(model.store)
        reference.apply(flat)
    assert np.all(params[~used] == 0)
    np.testing.assert_allclose(params[used], flat.params, rtol=1e-13, atol=1e-15)
    assert all(np.all(buf[~used] == 0) or key == "accumulator" for key, buf in opt.state["float64"].items())


def test_optimizer_get_errors():
    with pytest.raises(ValueError, match="unknown optimizer 'sgdx'"):
        optimizers.get("sgdx")
    with pytest.raises(TypeError, match="optimizer"):
        optimizers.get(0.1)
    opt = SGD()
    assert optimizers.get(opt) is opt


@pytest.mark.parametrize("cls", [RMSprop, Adagrad, Adadelta, Adam, Adamax, Nadam])
def test_lr_alias_on_every_optimizer(cls):
    """Keras 2 scripts write ``Adam(lr=...)``: the same optimizer as ``learning_rate=...``."""
    assert cls(lr=0.05).learning_rate == 0.05 == cls(learning_rate=0.05).learning_rate
    assert cls(lr=0.05, learning_rate=0.05).learning_rate == 0.05
    assert cls().learning_rate == 0.001
    with pytest.raises(ValueError, match="lr and learning_rate"):
        cls(lr=0.05, learning_rate=0.001)
    _, _, via_lr, _, _ = trajectory(cls(lr=0.05), steps=3)
    _, _, via_learning_rate, _, _ = trajectory(cls(learning_rate=0.05), steps=3)
    np.testing.assert_array_equal(via_lr[-1], via_learning_rate[-1])
    _, _, default, _, _ = trajectory(cls(), steps=3)
    assert not np.allclose(default[-1], via_lr[-1])


def test_apply_fused_uses_the_schedules_rate_then_counts_the_step():
    """A compiled training step makes the update itself: apply_fused hands it the rate apply would
    use (InverseTimeDecay here: lr / (1 + decay t)) and advances t; clipping cannot be fused."""
    opt = optimizers.SGD(0.1, decay=0.5)
    seen = [opt.apply_fused(lambda lr: lr) for _ in range(3)]
    assert seen == pytest.approx([0.1, 0.1 / 1.5, 0.1 / 2.0])
    assert opt.iterations == 3
    clipped = optimizers.SGD(0.1, clipvalue=1.0)
    assert clipped.clips
    with pytest.raises(RuntimeError, match="clips gradients"):
        clipped.apply_fused(lambda lr: lr)
    assert clipped.iterations == 0 and not opt.clips
