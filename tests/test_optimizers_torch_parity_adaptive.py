"""Adaptive optimizers against torch.optim's counterparts, step by step, in float64.

Both sides start from the same weights and see the gradient of the same quadratic
L(w) = 1/2 w^T A w - b^T w at their own current weights, so any difference in an update rule
compounds over the steps. Where Keras' and PyTorch's formulas differ only in where epsilon
goes, the settings below make them coincide, and the docstring of each case says why:

- RMSprop: Keras divides by sqrt(ms + eps) (eps inside the root), PyTorch by sqrt(ms) + eps:
  equal for eps = 0 (gradients are never exactly 0 here). PyTorch's ``alpha`` is Keras' ``rho``;
  its momentum buffer b = momentum b + g / denom with w -= lr b is Keras' v = lr b. Centered
  the same way (ms - mg^2 under the root on both sides).
- Adagrad: Keras sqrt(acc + eps) vs PyTorch sqrt(acc) + eps: equal for eps = 0; both start the
  accumulator at ``initial_accumulator_value`` (PyTorch's default 0, Keras' 0.1: set here).
- Adadelta: the same formula on both sides, eps inside both roots: any eps matches (PyTorch's
  defaults lr=1.0, rho=0.9, eps=1e-6 differ from Keras' 0.001, 0.95, 1e-7: set explicitly).
- Adam: Keras' w -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps) is PyTorch's
  lr m_hat / (sqrt(v_hat) + eps') with eps' = eps / sqrt(1 - b2^t) -- an "epsilon hat" that
  changes every step, so no constant pair of eps values agrees; they coincide exactly at
  eps = 0 (and differ by ~eps relative otherwise, checked loosely below). AMSGrad likewise.
- Adamax: PyTorch puts eps inside the max (u = max(b2 u, |g| + eps)), Keras adds it after
  (u + eps): equal for eps = 0.
- Nadam: PyTorch's mu_t = b1 (1 - 0.5 * 0.96^(t * momentum_decay)); Keras' has no
  momentum_decay (0.96^t): equal with ``momentum_decay=1``; eps sits outside sqrt(v_hat) on
  both sides, so any eps matches.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tensornet import optimizers  # noqa: E402
from tensornet.backend import get_backend  # noqa: E402

STEPS = 25
SIZE = 7


@pytest.fixture(autouse=True)
def _torch_float64_scalars():
    """torch keeps optimizer scalars (step, NAdam's mu_product) in the default dtype: float64 here,
    or NAdam's float32 mu_product alone would part the trajectories by ~1e-8."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


class _Store:
    """The two flat buffers an optimizer steps over (what a model's ParameterStore holds)."""

    def __init__(self, ops, params):
        self.ops = ops
        self.groups = {"float64": (params, np.zeros_like(params))}

    def views(self):
        return iter(())


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(SIZE, SIZE))
    a = q @ q.T / SIZE + np.eye(SIZE) * 0.5
    b = rng.normal(size=SIZE)
    w0 = rng.normal(size=SIZE)
    return a, b, w0


def _run_tensornet(optimizer, a, b, w0):
    ops = get_backend("numpy")
    store = _Store(ops, w0.copy())
    optimizer.build(store)
    params, grads = store.groups["float64"]
    trajectory = []
    for _ in range(STEPS):
        grads[...] = a @ params - b
        optimizer.apply(store)
        trajectory.append(params.copy())
    return np.array(trajectory)


def _run_torch(factory, a, b, w0):
    w = torch.tensor(w0.copy(), dtype=torch.float64, requires_grad=True)
    opt = factory([w])
    at, bt = torch.tensor(a), torch.tensor(b)
    trajectory = []
    for _ in range(STEPS):
        opt.zero_grad()
        w.grad = (at @ w.detach() - bt).clone()
        opt.step()
        trajectory.append(w.detach().numpy().copy())
    return np.array(trajectory)


CASES = {
    "rmsprop": (lambda: optimizers.RMSprop(learning_rate=0.01, rho=0.9, epsilon=0.0),
                lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0)),
    "rmsprop_momentum": (lambda: optimizers.RMSprop(learning_rate=0.01, rho=0.8, momentum=0.9, epsilon=0.0),
                         lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.8, momentum=0.9, eps=0.0)),
    "rmsprop_centered": (lambda: optimizers.RMSprop(learning_rate=0.01, rho=0.9, momentum=0.5, centered=True,
                                                    epsilon=0.0),
                         lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, centered=True,
                                                       eps=0.0)),
    "adagrad": (lambda: optimizers.Adagrad(learning_rate=0.1, initial_accumulator_value=0.1, epsilon=0.0),
                lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=0.0)),
    "adadelta": (lambda: optimizers.Adadelta(learning_rate=1.0, rho=0.9, epsilon=1e-6),
                 lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6)),
    "adadelta_keras_eps": (lambda: optimizers.Adadelta(learning_rate=0.5, rho=0.95, epsilon=1e-7),
                           lambda p: torch.optim.Adadelta(p, lr=0.5, rho=0.95, eps=1e-7)),
    "adam": (lambda: optimizers.Adam(learning_rate=0.05, epsilon=0.0),
             lambda p: torch.optim.Adam(p, lr=0.05, eps=0.0)),
    "adam_amsgrad": (lambda: optimizers.Adam(learning_rate=0.05, beta_1=0.8, beta_2=0.99, epsilon=0.0, amsgrad=True),
                     lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=0.0, amsgrad=True)),
    "adamax": (lambda: optimizers.Adamax(learning_rate=0.05, epsilon=0.0),
               lambda p: torch.optim.Adamax(p, lr=0.05, eps=0.0)),
    "nadam": (lambda: optimizers.Nadam(learning_rate=0.05, epsilon=1e-7),
              lambda p: torch.optim.NAdam(p, lr=0.05, eps=1e-7, momentum_decay=1.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_trajectory_matches_torch(case):
    ours, theirs = CASES[case]
    a, b, w0 = _problem()
    expected = _run_torch(theirs, a, b, w0)
    actual = _run_tensornet(ours(), a, b, w0)
    assert np.abs(expected[-1] - w0).max() > 1e-2  # the weights really moved
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


def test_adam_epsilon_hat_differs_from_torch_eps_but_only_by_order_eps():
    """With the default eps the two conventions part by ~eps: not an exact match (see above)."""
    a, b, w0 = _problem(1)
    expected = _run_torch(lambda p: torch.optim.Adam(p, lr=0.05, eps=1e-7), a, b, w0)
    actual = _run_tensornet(optimizers.Adam(learning_rate=0.05, epsilon=1e-7), a, b, w0)
    difference = np.abs(actual - expected).max()
    assert 0 < difference < 1e-5


def test_keras_epsilon_hat_is_torch_eps_scaled_per_step():
    """Keras' Adam with eps is PyTorch's with eps / sqrt(1 - b2^t): one step (t = 1) checks it."""
    a, b, w0 = _problem(2)
    eps, beta_2 = 1e-3, 0.999
    ours = _run_tensornet(optimizers.Adam(learning_rate=0.05, epsilon=eps, beta_2=beta_2), a, b, w0)[0]
    theirs = _run_torch(lambda p: torch.optim.Adam(p, lr=0.05, eps=eps / np.sqrt(1 - beta_2), betas=(0.9, beta_2)),
                        a, b, w0)[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
