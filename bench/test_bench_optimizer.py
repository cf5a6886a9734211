"""The optimizer step over a model's whole flat parameter buffer (one pass where fused)."""
import numpy as np
import pytest

from conftest import host, rand
from tensornet.backend.base import Backend

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


@pytest.mark.parametrize("size", SIZES[1:2])
def test_adam_update(run, ops, size):
    rng = np.random.default_rng(1)
    w, g = rand(ops, rng, (size,)), rand(ops, rng, (size,))
    m, v = ops.zeros((size,)), ops.zeros((size,))
    ops.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 0)
    assert np.isfinite(host(ops, w)).all()
    run(ops.adam_update, w, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 5, rate=(4e-9 * size * 7, "GB/s"))
