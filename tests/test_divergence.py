"""The divergence guard: a NaN or infinite loss or gradient stops fit with the step named, the
model exactly as after the last finite step, checkpoints intact, and no device read per step."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import stateful_classifier, three_class_data
from tensornet import Sequential
from tensornet.callbacks import Checkpoints, LambdaCallback
from tensornet.checkpoints import CheckpointDirectory
from tensornet.errors import DivergenceError
from tensornet.layers import Dense
from tensornet.training.divergence import FiniteGuard
from tensornet.optimizers import Adam

BATCH = 16
POISONED_STEP = 5  # the 6th step of the run: batch 6 (index 5) of epoch 1


def data(n=160, seed=0):
    return three_class_data(n, seed)


def make_model(backend="numpy"):
    return stateful_classifier(Adam(1e-2), dropout=0.2, seed=7, backend=backend)


class Stop(Exception):
    pass


def state_of(model):
    """Weights, BatchNormalization statistics, optimizer buffers (host arrays) and step count."""
    arrays = [np.asarray(w) for w in model.get_weights()]
    arrays += [np.asarray(v) for v in model.layers[1].get_state_arrays().values()]
    arrays += list(model.optimizer.get_state(model.ops)["buffers"].values())
    return arrays, model.optimizer.iterations


def diverge(backend, check_seconds, monkeypatch, callbacks=(), poison=np.nan):
    """Fit 3 epochs where the batch of step POISONED_STEP comes out of the first layer holding
    ``poison`` (every time that step is computed, as a poisoned batch would); return the model
    and the error."""
    x, y = data()
    model = make_model(backend)
    forward = Dense.forward

    def poisoned_forward(layer, inputs, training=False):
        out = forward(layer, inputs, training)
        if training and layer is model.layers[0] and model.optimizer.iterations == POISONED_STEP:
            out[2, 3] = poison
        return out

    monkeypatch.setattr(Dense, "forward", poisoned_forward)
    monkeypatch.setattr("tensornet.training.divergence.CHECK_SECONDS", check_seconds)
    with pytest.raises(DivergenceError) as caught, np.errstate(all="ignore"):
        model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=list(callbacks))
    monkeypatch.setattr(Dense, "forward", forward)
    return model, caught.value


def reference_before(step, backend="numpy"):
    """The same run stopped right after ``step`` steps, without any poison."""
    x, y = data()
    model = make_model(backend)

    def stop(batch, logs):
        if model.optimizer.iterations == step:
            raise Stop

    with pytest.raises(Stop):
        model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[LambdaCallback(on_batch_end=stop)])
    return model


@pytest.mark.parametrize("check_seconds", [0.0, 1e9])
@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_a_poisoned_batch_stops_fit_at_its_step_with_the_last_finite_state(check_seconds, poison, monkeypatch):
    model, error = diverge("numpy", check_seconds, monkeypatch, poison=poison)
    assert (error.epoch, error.batch, error.step, error.quantity) == (0, 5, 5, "loss")
    assert "epoch 1, batch 6 (optimizer step 6)" in str(error)
    assert "those after optimizer step 5" in str(error)
    expected = reference_before(5)
    arrays, iterations = state_of(model)
    expected_arrays, expected_iterations = state_of(expected)
    assert iterations == expected_iterations == 5
    for a, b in zip(arrays, expected_arrays):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(a).all() for a in arrays)


@pytest.mark.parametrize("check_seconds, checks_before_failure, replayed", [(0.0, POISONED_STEP, 1), (1e9, 0, 6)])
def test_check_seconds_sets_how_often_the_guard_checks(check_seconds, checks_before_failure, replayed,
                                                       monkeypatch):
    """With CHECK_SECONDS = 0 the guard checks after every step (so the replay is the one bad
    step); with checks far apart it replays the epoch up to the bad step."""
    guards = []
    init = FiniteGuard.__init__

    def recording_init(guard, *args, **kwargs):
        init(guard, *args, **kwargs)
        guards.append(guard)

    monkeypatch.setattr(FiniteGuard, "__init__", recording_init)
    diverge("numpy", check_seconds, monkeypatch)
    (guard,) = guards
    assert guard.check_seconds == check_seconds
    # The failing check counts too.
    assert (guard.checks, guard.replayed) == (checks_before_failure + 1, replayed)


def test_the_newest_checkpoint_is_the_last_finite_step(tmp_path, monkeypatch):
    model, error = diverge("numpy", 1e9, monkeypatch, callbacks=[Checkpoints(tmp_path, every_steps=1, keep=2)])
    newest = CheckpointDirectory(tmp_path).restore()
    assert newest.optimizer.iterations == error.step == 5
    for a, b in zip(newest.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_non_finite_gradient_with_a_finite_loss_is_named(monkeypatch):
    x, y = data()
    model = make_model()
    backward = Sequential.backward

    def poisoned_backward(self, dy, through_activation=True):
        result = backward(self, dy, through_activation)
        if self.optimizer.iterations == 4:
            self.layers[0].gradients["kernel"][0, 0] = np.inf
        return result

    monkeypatch.setattr(Sequential, "backward", poisoned_backward)
    with pytest.raises(DivergenceError, match="a gradient holds NaN or infinite values") as caught, \
            np.errstate(all="ignore"):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    assert (caught.value.step, caught.value.quantity) == (4, "gradient")
    assert model.optimizer.iterations == 4
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_no_device_read_per_step(monkeypatch):
    """With checks far apart the device is read a bounded number of times per epoch, not per step."""
    x, y = data(n=800)
    model = make_model()
    model.fit(x[:32], y[:32], batch_size=BATCH, epochs=1, verbose=0)  # build
    ops = model.ops
    reads = {"to_float": 0, "all_finite": 0, "to_numpy": 0}
    for name in reads:
        original = getattr(ops, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            reads[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(ops, name, counting)
    epochs, steps = 2, 800 // BATCH
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    assert model.optimizer.iterations >= epochs * steps
    # Per epoch: the loss and metric totals (2), the check's loss (1) and one all_finite per dtype.
    assert reads["to_float"] + reads["all_finite"] <= epochs * 6 + 2, reads
    assert reads["to_numpy"] <= epochs * 6, reads


def test_check_finite_false_keeps_keras_behaviour(monkeypatch):
    x, y = data()
    model = make_model()
    model.compile(optimizer=Adam(1e30), loss="sparse_categorical_crossentropy")
    with np.errstate(all="ignore"):
        history = model.fit(x * 1e30, y, batch_size=BATCH, epochs=2, verbose=0, check_finite=False)
    assert not np.isfinite(history.history["loss"][-1])
    assert not all(np.isfinite(w).all() for w in model.get_weights())


def test_non_finite_weights_before_training_are_refused():
    x, y = data()
    model = make_model()
    model.build((8,))
    weights = model.get_weights()
    weights[0][0, 0] = np.nan
    model.set_weights(weights)
    with pytest.raises(ValueError, match="weights hold NaN or infinite values before training"):
        model.fit(x, y, verbose=0)


@pytest.mark.gpu
def test_a_poisoned_batch_on_the_gpu_stops_at_its_step_with_the_last_finite_state(monkeypatch):
    model, error = diverge("cupy", 1e9, monkeypatch)
    assert (error.epoch, error.batch, error.step, error.quantity) == (0, 5, 5, "loss")
    expected = reference_before(5, backend="cupy")
    arrays, iterations = state_of(model)
    expected_arrays, expected_iterations = state_of(expected)
    assert iterations == expected_iterations == 5
    for a, b in zip(arrays, expected_arrays):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
