"""SIGINT during fit: the step finishes, checkpoint callbacks write, TrainingInterrupted says where."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from tensornet import Sequential
from tensornet.callbacks import Checkpoints, LambdaCallback
from tensornet.checkpoints import load_checkpoint
from tensornet.errors import TrainingInterrupted
from tensornet.training.interrupts import InterruptRequests
from tensornet.layers import Dense


def make_model():
    model = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(2, activation="softmax")], seed=1)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(100, 4)).astype("float32"), rng.integers(0, 2, 100)


def test_first_sigint_is_a_request_and_the_second_interrupts_at_once():
    with InterruptRequests() as requests:
        os.kill(os.getpid(), signal.SIGINT)
        assert requests.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_disabled_requests_leave_sigint_alone():
    with InterruptRequests(enabled=False) as requests:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert not requests.requested


def test_sigint_in_fit_checkpoints_after_the_step_and_resumes_exactly(tmp_path):
    x, y = data()
    reference = make_model()
    reference.fit(x, y, batch_size=10, epochs=2, verbose=0)

    model = make_model()
    steps_seen = []

    def ctrl_c(batch, logs):
        steps_seen.append(model.optimizer.iterations)
        if model.optimizer.iterations == 13:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as caught:
        model.fit(x, y, batch_size=10, epochs=2, verbose=0,
                  callbacks=[LambdaCallback(on_batch_end=ctrl_c), Checkpoints(tmp_path, every_epochs=None)])
    error = caught.value
    assert steps_seen[-1] == 13 and (error.epoch, error.batch, error.step) == (1, 2, 13)
    assert "after epoch 2, batch 3 (optimizer step 13); checkpoint written to" in str(error)
    assert len(error.checkpoints) == 1 and error.checkpoints[0].endswith("ckpt-0000000013.npz")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    restored = load_checkpoint(error.checkpoints[0])
    restored.fit(x, y, batch_size=10, epochs=2, verbose=0, initial_epoch=restored.epochs_completed)
    for a, b in zip(reference.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_without_a_checkpoint_callback_sigint_is_a_plain_keyboard_interrupt():
    x, y = data()
    model = make_model()

    def ctrl_c(batch, logs):
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt) as caught:
        model.fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[LambdaCallback(on_batch_end=ctrl_c)])
    assert not isinstance(caught.value, TrainingInterrupted)
