"""BatchNormalization(synchronized=True): the backend's synchronised forward and backward, with
ranks played by threads that meet in an in-process sum, against one process holding the whole
batch, and a float64 finite-difference check of the global loss through two ranks.
(tests/test_distributed_mpi.py checks the same under ``mpirun -n 2``.)"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from tensornet.backend import cupy_status, get_backend
from tensornet.layers import BatchNormalization
from tensornet.models import Sequential
from tensornet.models.configs import layer_from_config

EPSILON = 1e-3


class ThreadRanks:
    """``size`` threads as ranks; ``all_sum(rank)`` is rank ``rank``'s sum over the ranks (rank order)."""

    def __init__(self, size):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=30)
        self.slots = [None] * size
        self.calls = [0] * size

    def all_sum(self, rank):
        def total(buffer):
            self.calls[rank] += 1
            self.slots[rank] = buffer.copy()
            self.barrier.wait()
            result = self.slots[0].copy()
            for part in self.slots[1:]:
                result += part
            self.barrier.wait()
            buffer[...] = result
            return buffer
        return total

    def run(self, work):
        """``work(rank, all_sum)`` on every rank at once; the results in rank order."""
        results, errors = [None] * self.size, []

        def target(rank):
            try:
                results[rank] = work(rank, self.all_sum(rank))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(rank,)) for rank in range(self.size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results


def _data(rows, features=5, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, features)) * 2.0 + 0.5).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, features).astype(dtype)
    beta = rng.standard_normal(features).astype(dtype)
    weights = rng.standard_normal((rows, features)).astype(dtype)  # L = sum_i w_i . y_i / N
    return x, gamma, beta, weights


def _two_ranks(x, gamma, beta, weights, split, backend="numpy"):
    """Each rank's synchronised forward and backward on its rows, dy the gradient of its own mean
    loss sum_i w_i . y_i / n_r: (y, dx, dgamma, dbeta, count, n_r) per rank, on the host."""
    ops = get_backend(backend)
    bounds = [(0, split), (split, x.shape[0])]
    x, gamma, beta, weights = (ops.asarray(a) for a in (x, gamma, beta, weights))

    def work(rank, all_sum):
        start, stop = bounds[rank]
        xr, wr = x[start:stop], weights[start:stop]
        y, x_hat, inv_std, _, _, count = ops.batch_norm_forward_synchronized(xr, gamma, beta, EPSILON, all_sum)
        y = ops.to_numpy(y).copy()
        dy = wr / max(stop - start, 1)
        dx, dgamma, dbeta = ops.batch_norm_backward_synchronized(dy, x_hat, inv_std, gamma, count, all_sum)
        return y, ops.to_numpy(dx), ops.to_numpy(dgamma), ops.to_numpy(dbeta), float(count), stop - start

    return ThreadRanks(2).run(work)


def _one_process(x, gamma, beta, weights):
    ops = get_backend("numpy")
    y, x_hat, inv_std, mean, var = ops.batch_norm_forward(x, gamma, beta, EPSILON)
    y = y.copy()
    dx, dgamma, dbeta = ops.batch_norm_backward(weights / x.shape[0], x_hat, inv_std, gamma)
    return y, dx, dgamma, dbeta


def _global_gradients(ranks):
    """The gradients of the global mean loss: each rank's weighted by n_r / N (as data-parallel fit does)."""
    total = sum(rank[5] for rank in ranks)
    dx = np.concatenate([rank[1] * (rank[5] / total) for rank in ranks])
    dgamma = sum(rank[2] * (rank[5] / total) for rank in ranks)
    dbeta = sum(rank[3] * (rank[5] / total) for rank in ranks)
    return dx, dgamma, dbeta


@pytest.mark.parametrize("split", [7, 1, 0])  # uneven shares, one row, a rank with no rows
def test_two_ranks_normalise_and_differentiate_like_one_process_with_the_whole_batch(split):
    x, gamma, beta, weights = _data(19)
    ranks = _two_ranks(x, gamma, beta, weights, split)
    y, dx, dgamma, dbeta = _one_process(x, gamma, beta, weights)
    assert all(rank[4] == 19 for rank in ranks)  # N, the rows of both ranks
    np.testing.assert_allclose(np.concatenate([ranks[0][0], ranks[1][0]]), y, rtol=1e-12, atol=1e-12)
    for got, expected in zip(_global_gradients(ranks), (dx, dgamma, dbeta)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("split", [7, 0])
def test_on_the_cupy_backend_two_ranks_match_one_process_on_the_host(split):
    usable, reason = cupy_status()
    if not usable:
        pytest.skip(reason)
    x, gamma, beta, weights = _data(19, seed=3)
    ranks = _two_ranks(x, gamma, beta, weights, split, backend="cupy")
    y, dx, dgamma, dbeta = _one_process(x, gamma, beta, weights)
    np.testing.assert_allclose(np.concatenate([ranks[0][0], ranks[1][0]]), y, rtol=1e-12, atol=1e-12)
    for got, expected in zip(_global_gradients(ranks), (dx, dgamma, dbeta)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_the_per_rank_default_differs_from_the_synchronised_statistics():
    x, gamma, beta, _ = _data(19)
    ops = get_backend("numpy")
    alone = ops.batch_norm_forward(x[:7], gamma, beta, EPSILON)[0].copy()
    synced = _two_ranks(x, gamma, beta, np.ones_like(x), 7)[0][0]
    assert not np.allclose(alone, synced, rtol=1e-3)


def test_finite_differences_of_the_global_loss_through_two_ranks():
    x, gamma, beta, weights = _data(11, features=3, seed=4)
    split = 4

    def loss(values):
        ys = _two_ranks(values, gamma, beta, weights, split)
        return float(np.sum(np.concatenate([ys[0][0], ys[1][0]]) * weights) / values.shape[0])

    analytic = _global_gradients(_two_ranks(x, gamma, beta, weights, split))[0]
    h = 1e-6
    for index in [(0, 0), (3, 2), (4, 1), (10, 0), (7, 2)]:  # rows of both ranks, either side of the split
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        numeric = (loss(plus) - loss(minus)) / (2 * h)
        assert abs(numeric - analytic[index]) < 1e-7 + 1e-5 * abs(numeric), index


def test_one_rank_is_the_per_process_formula_in_float32():
    x, gamma, beta, weights = _data(33, features=6, dtype="float32", seed=2)
    ops = get_backend("numpy")
    identity = lambda buffer: buffer  # noqa: E731 - the sum over a single rank
    y1, x_hat1, inv1, mean1, var1, count = ops.batch_norm_forward_synchronized(x, gamma, beta, EPSILON, identity)
    y2, x_hat2, inv2, mean2, var2 = ops.batch_norm_forward(x, gamma, beta, EPSILON)
    for a, b in ((y1, y2), (mean1, mean2), (var1, var2), (inv1, inv2)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    dy = weights / 33
    dx1, dg1, db1 = ops.batch_norm_backward_synchronized(dy, x_hat1, inv1, gamma, count, identity)
    dx2, dg2, db2 = ops.batch_norm_backward(dy, x_hat2, inv2, gamma)
    for a, b in ((dx1, dx2), (dg1, dg2), (db1, db2)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_layer_sums_only_when_synchronized_and_given_the_sum():
    x = _data(16, features=4, dtype="float32")[0]
    calls = []

    def counted(buffer):
        calls.append(buffer.size)
        return buffer

    plain = BatchNormalization(momentum=0.9)
    synced = BatchNormalization(momentum=0.9, synchronized=True)
    outputs = []
    for layer in (plain, synced):
        model = Sequential([layer], seed=0)
        model.build((4,))
        layer.statistics_sum = counted
        outputs.append(layer.forward(x, training=True).copy())
        layer.backward(np.ones_like(x))
    assert calls == [5, 4]  # the synchronised forward: [sums, count], then the squared deviations
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
    synced.needs_input_grad = True
    synced.forward(x, training=True)
    synced.backward(np.ones_like(x))
    assert calls[2:] == [5, 4, 8]  # and backward's [dbeta, dgamma]


def test_synchronized_is_kept_in_the_config_and_checked():
    layer = BatchNormalization(synchronized=True)
    assert layer.get_config()["synchronized"] is True
    assert layer_from_config("BatchNormalization", layer.get_config(), None).synchronized is True
    assert BatchNormalization().synchronized is False
    with pytest.raises(TypeError, match="synchronized"):
        BatchNormalization(synchronized="yes")
