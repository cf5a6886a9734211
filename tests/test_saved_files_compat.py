"""Files written by an earlier tensornet (``tests/fixtures/saved/``) still load, predict the same
numbers and resume training to the same weights.

The fixtures are a 12-16-8-3 network (Flatten, Dense + relu, BatchNormalization, Dropout, Dense,
tanh, Dense + softmax, seed 11) on 37 random examples in batches of 8: ``sgd_model.npz`` after
two epochs of SGD (Nesterov momentum, decay, weight decay), ``sgd_weights.npz`` its weights
alone, and ``adam_checkpoint_mid_epoch.npz``, a ``Checkpoints`` file of an Adam run taken after
optimizer step 7 (batch 2 of epoch 2). ``expected.npz`` holds the data, the saved model's
predictions on ``probe``, its weights after one more epoch, and the Adam run's final weights.
"""
import os

import numpy as np
import pytest

from tensornet.checkpoints import load_checkpoint
from tensornet.models import load_model

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "saved")
# The fixtures' numbers were computed on one CPU; BLAS and the kernels pick their code by the CPU
# running them (AVX2 or AVX-512, MKL's kernels), so another machine rounds some float32 sums
# differently in the last bit: the files' numbers are compared to float32 rounding. Resuming to
# bit-identical weights on one machine is tests/test_checkpoints.py's.
CLOSE = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def expected():
    with np.load(os.path.join(FIXTURES, "expected.npz"), allow_pickle=False) as data:
        return dict(data)


def _weights(expected, prefix):
    count = sum(1 for key in expected if key.startswith(prefix + "/"))
    return [expected[f"{prefix}/{i}"] for i in range(count)]


def test_saved_model_predicts_the_same(expected):
    model = load_model(os.path.join(FIXTURES, "sgd_model.npz"))
    assert model.epochs_completed == 2
    np.testing.assert_allclose(model.predict(expected["probe"]), expected["predicted"], **CLOSE)


def test_saved_model_resumes_to_the_same_weights(expected):
    model = load_model(os.path.join(FIXTURES, "sgd_model.npz"))
    model.fit(expected["x"], expected["y"], batch_size=8, epochs=3, initial_epoch=model.epochs_completed, verbose=0)
    for got, want in zip(model.get_weights(), _weights(expected, "sgd_after_resume"), strict=True):
        np.testing.assert_allclose(got, want, **CLOSE)


def test_saved_weights_load_into_the_same_architecture(expected):
    model = load_model(os.path.join(FIXTURES, "sgd_model.npz"))
    fresh = load_model(os.path.join(FIXTURES, "sgd_model.npz"))
    fresh.set_weights([w * 0 for w in fresh.get_weights()])
    fresh.load_weights(os.path.join(FIXTURES, "sgd_weights.npz"))
    for got, want in zip(fresh.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_mid_epoch_checkpoint_resumes_to_the_same_weights(expected):
    model = load_checkpoint(os.path.join(FIXTURES, "adam_checkpoint_mid_epoch.npz"))
    assert model.optimizer.iterations == 7
    assert model.resume_point is not None and (model.resume_point.epoch, model.resume_point.batch) == (1, 2)
    model.fit(expected["x"], expected["y"], batch_size=8, epochs=2, initial_epoch=model.epochs_completed, verbose=0)
    for got, want in zip(model.get_weights(), _weights(expected, "adam_final"), strict=True):
        np.testing.assert_allclose(got, want, **CLOSE)
