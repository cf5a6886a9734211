"""BatchGathering._batches on data resident on the device: the batches are x[order[rows]] (or
the stored rows without an order), the last partial batch included, from any first batch."""
import numpy as np
import pytest

from tensornet.backend import get_backend
from tensornet.training.batches import BatchGathering


class _Gatherer(BatchGathering):
    def __init__(self):
        self.model = type("M", (), {"ops": get_backend("numpy")})()
        self._streamed, self._buffers = False, {}


@pytest.mark.parametrize("n, batch_size, first", [(10, 4, 0), (12, 4, 1), (3, 5, 0), (9, 1, 4), (11, 11, 0)])
@pytest.mark.parametrize("shuffled", [False, True])
def test_batches_are_the_rows_in_order(n, batch_size, first, shuffled):
    rng = np.random.default_rng(n + batch_size)
    x = rng.standard_normal((n, 3, 2)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)]
    order = rng.permutation(n).astype(np.int64) if shuffled else None
    rows = order if shuffled else np.arange(n)
    got = [(xb.copy(), yb.copy()) for xb, yb in _Gatherer()._batches(x, y, batch_size, order, first)]
    starts = range(first * batch_size, n, batch_size)
    assert len(got) == len(starts)
    for (xb, yb), start in zip(got, starts):
        index = rows[start:start + batch_size]
        np.testing.assert_array_equal(xb, x[index])
        np.testing.assert_array_equal(yb, y[index])
        assert xb.dtype == np.float32 and yb.dtype == np.float32
