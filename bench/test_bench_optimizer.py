"""The optimizer step over a model's whole flat parameter buffer (one pass where fused): SGD in
its three forms, and every adaptive rule, each checked against the reference ``Backend``."""
import numpy as np
import pytest

from conftest import host, rand
from tensornet.backend import Backend

# parameter counts of bench/compare.py's models: 784-64-10, 784-512-512-10, 784-2048-2048-10
SIZES = [50_890, 669_706, 5_824_522]
RULES = {"sgd": (0.0, False), "momentum": (0.9, False), "nesterov": (0.9, True)}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("size", SIZES)
def test_sgd_update(run, ops, size, rule):
    momentum, nesterov = RULES[rule]
    rng = np.random.default_rng(0)
    w, g = rand(ops, rng, (size,)), rand(ops, rng, (size,))
    v = ops.zeros((size,)) if momentum else None
    w_ref, v_ref = host(ops, w).astype(np.float32), (np.zeros(size, np.float32) if momentum else None)
    for _ in range(2):
        ops.sgd_update(w, g, v, 0.01, momentum, nesterov, 0.0)
        Backend().sgd_update(w_ref, host(ops, g).astype(np.float32), v_ref, 0.01, momentum, nesterov, 0.0)
    np.testing.assert_allclose(host(ops, w), w_ref, rtol=1e-6, atol=1e-7)
    moved = (3 if momentum else 2) + (2 if momentum else 1)  # arrays read + written
    run(ops.sgd_update, w, g, v, 0.01, momentum, nesterov, 0.0, rate=(4e-9 * size * moved, "GB/s"))


MU = 0.9 * (1.0 - 0.5 * 0.96 ** 0.004)  # Nadam's momentum schedule at an early step
#: rule -> (its state arrays' starts: "p" positive, "z" zero; call(ops, w, g, *state); arrays read + written per element)
ADAPTIVE = {
    "rmsprop": ("p", lambda ops, w, g, s: ops.rmsprop_update(w, g, s, 1e-3, 0.9, 1e-7, 0.0, None, False, None), 5),
    "rmsprop-centered-momentum": ("ppz", lambda ops, w, g, s, v, m: ops.rmsprop_update(
        w, g, s, 1e-3, 0.9, 1e-7, 0.9, v, True, m), 9),
    "adam": ("pp", lambda ops, w, g, m, v: ops.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 5), 7),
    "amsgrad": ("ppp", lambda ops, w, g, m, v, vmax: ops.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 5, True, vmax), 9),
    "adagrad": ("p", lambda ops, w, g, a: ops.adagrad_update(w, g, a, 1e-3, 1e-7), 5),
    "adadelta": ("pp", lambda ops, w, g, a, d: ops.adadelta_update(w, g, a, d, 1.0, 0.95, 1e-7), 7),
    "adamax": ("pp", lambda ops, w, g, m, u: ops.adamax_update(w, g, m, u, 2e-3, 0.9, 0.999, 1e-7, 5), 7),
    "nadam": ("pp", lambda ops, w, g, m, v: ops.nadam_update(w, g, m, v, 2e-3, 0.9, 0.999, 1e-7, MU, MU, MU * MU, 1), 7),
}


@pytest.mark.parametrize("rule", list(ADAPTIVE))
@pytest.mark.parametrize("size", SIZES[1:2])
def test_adaptive_update(run, ops, size, rule):
    """Two updates from a valid state (second moments positive, the centered mean gradient
    zero) stay finite and match the reference backend's."""
    starts, update, moved = ADAPTIVE[rule]
    rng = np.random.default_rng(1)
    w, g = rand(ops, rng, (size,)), rand(ops, rng, (size,))
    state_host = [np.abs(rng.standard_normal(size)).astype(np.float32) if start == "p" else np.zeros(size, np.float32)
                  for start in starts]
    state = [ops.asarray(s.copy()) for s in state_host]
    w_ref, g_ref = host(ops, w).astype(np.float32), host(ops, g).astype(np.float32)
    for _ in range(2):
        update(ops, w, g, *state)
        update(Backend(), w_ref, g_ref, *state_host)
    assert np.isfinite(w_ref).all()
    np.testing.assert_allclose(host(ops, w), w_ref, rtol=1e-5, atol=1e-6)
    run(update, ops, w, g, *state, rate=(4e-9 * size * moved, "GB/s"))
