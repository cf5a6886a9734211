"""The threaded bias + relu (serial row jobs on ``run_jobs``) against the reference, on random
inputs of awkward sizes, in place and not, NaN kept; and rows fewer than threads."""
from __future__ import annotations

import numpy as np
import pytest

from tensornet.backend import Backend

kernels = pytest.importorskip("tensornet.backend._numba_kernels", reason="Numba is not installed")  # exports the pair


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 7), (3, 5), (257, 131), (1001, 33)])
@pytest.mark.parametrize("twin", [0, 1], ids=["threaded", "serial"])
def test_bias_activation_relu_matches_the_reference(dtype, shape, twin):
    rng = np.random.default_rng(sum(shape))
    z = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[1]).astype(dtype)
    z[0, -1] = np.nan
    ref_z = z.copy()
    ref = Backend().bias_activation(ref_z, bias, "relu", out=np.empty_like(z))
    kernel = kernels.bias_activation_relu[twin]
    fast_z, out = z.copy(), np.empty_like(z)
    kernel(fast_z, bias, out)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(fast_z, ref_z)
    assert out.dtype == dtype
    in_place = z.copy()
    kernel(in_place, bias, in_place)
    np.testing.assert_array_equal(in_place, ref)
