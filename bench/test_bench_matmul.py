"""matmul: the three products of a Dense layer's step (forward, dW, dx), as BLAS runs them."""
import numpy as np
import pytest

from conftest import host, rand

# (batch, fan_in, fan_out): the layers of bench/compare.py's cases
SHAPES = [(128, 784, 512), (128, 512, 512), (256, 2048, 2048), (32, 784, 64)]


@pytest.mark.parametrize("kind", ["forward", "weight_grad", "input_grad"])
@pytest.mark.parametrize("n, fan_in, fan_out", SHAPES, ids=[f"{n}x{i}x{o}" for n, i, o in SHAPES])
def test_matmul(run, ops, n, fan_in, fan_out, kind):
    rng = np.random.default_rng(0)
    x, w, dz = rand(ops, rng, (n, fan_in)), rand(ops, rng, (fan_in, fan_out)), rand(ops, rng, (n, fan_out))
    if kind == "forward":        # z = x W
        a, b, trans, out = x, w, (False, False), ops.empty((n, fan_out))
    elif kind == "weight_grad":  # dW = x^T dz
        a, b, trans, out = x, dz, (True, False), ops.empty((fan_in, fan_out))
    else:                        # dx = dz W^T
        a, b, trans, out = dz, w, (False, True), ops.empty((n, fan_in))
    expected = (host(ops, a).T if trans[0] else host(ops, a)) @ (host(ops, b).T if trans[1] else host(ops, b))
    ops.matmul(a, b, out=out, trans_a=trans[0], trans_b=trans[1])
    np.testing.assert_allclose(host(ops, out), expected, rtol=1e-3, atol=1e-3)
    run(ops.matmul, a, b, out=out, trans_a=trans[0], trans_b=trans[1], rate=(2e-9 * n * fan_in * fan_out, "GFLOP/s"))
