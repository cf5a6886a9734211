"""Quick-mode check of ``bench/fused_step_bound.py`` (so the bound cannot rot): its fused step
trains the same small MLP as tensornet's step, and every stepper it times runs. Skipped where
MKL is not on the shared pool (no ``fast`` extra, not Linux x86-64)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")
import fused_step_bound  # noqa: E402  (bench/ is on the path: pytest puts a test's folder there)


@pytest.fixture
def bound():
    try:
        model, steppers, snapshot = fused_step_bound.setup((784, 96, 64, 10), 64)
    except SystemExit as exc:
        pytest.skip(str(exc))
    yield model, steppers, snapshot
    model.ops.finish()


def test_the_fused_step_trains_the_same_network(bound):
    _, steppers, snapshot = bound
    assert fused_step_bound.check_same_training(steppers, snapshot) <= fused_step_bound.SAME_TRAINING


def test_the_check_catches_a_step_that_trains_another_network(bound):
    _, steppers, snapshot = bound
    broken = dict(steppers, **{"fused step": steppers["fused step's products"]})  # no update at all
    assert fused_step_bound.check_same_training(broken, snapshot) > fused_step_bound.SAME_TRAINING


def test_the_fused_step_returns_the_batch_cross_entropy(bound):
    model, steppers, snapshot = bound
    snapshot.restore()
    x, y = steppers["fused step"].batches[0]
    h = x.astype(np.float64)
    for i, layer in enumerate(model.layers):
        h = h @ layer.weights["kernel"] + layer.weights["bias"]
        if i < len(model.layers) - 1:
            h = np.maximum(h, 0)
    log_p = h - h.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    steppers["fused step"].i = 0
    loss_sum = steppers["fused step"].step()
    snapshot.restore()
    assert loss_sum == pytest.approx(-(y * log_p).sum(), rel=1e-4)


def test_every_timed_stepper_runs(bound):
    _, steppers, snapshot = bound
    for stepper in steppers.values():
        stepper.step()
    snapshot.restore()
