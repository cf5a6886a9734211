"""The output layer's tail: bias + softmax (forward), then the fused softmax cross-entropy
(loss sum from the logits, gradient (p - t) / N written directly)."""
import numpy as np
import pytest

from conftest import host, rand

CASES = [(128, 10), (32, 10), (256, 10), (1024, 1000)]


def _reference(logits, target):
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    return -(target * log_p).sum(), p, (p - target) / len(z)


@pytest.mark.parametrize("n, k", CASES, ids=[f"{n}x{k}" for n, k in CASES])
def test_bias_softmax(run, ops, n, k):
    rng = np.random.default_rng(0)
    z0, bias = rand(ops, rng, (n, k), scale=5.0), rand(ops, rng, (k,))
    z, out = ops.copy(z0), ops.empty((n, k))
    ops.bias_activation(z, bias, "softmax", out=out)
    _, p, _ = _reference(host(ops, z0) + host(ops, bias), np.zeros((n, k)))
    np.testing.assert_allclose(host(ops, out), p, rtol=1e-4, atol=1e-6)
    # (z accumulates the bias on every timed call: values stay finite, the work is the same)
    run(ops.bias_activation, z, ops.zeros((k,)), "softmax", out=out, rate=(n * k * 12e-9, "GB/s"))


@pytest.mark.parametrize("sparse", [False, True], ids=["onehot", "sparse"])
@pytest.mark.parametrize("n, k", CASES, ids=[f"{n}x{k}" for n, k in CASES])
def test_softmax_cross_entropy(run, ops, n, k, sparse):
    rng = np.random.default_rng(1)
    logits = rand(ops, rng, (n, k), scale=5.0)
    labels = rng.integers(0, k, n)
    onehot = np.eye(k, dtype=np.float32)[labels]
    loss_ref, p, grad_ref = _reference(host(ops, logits), onehot)
    probs, grad = ops.asarray(p.astype(np.float32)), ops.empty((n, k))
    target = ops.asarray(labels) if sparse else ops.asarray(onehot)
    loss = ops.softmax_cross_entropy(logits, probs, target, grad, sparse=sparse)
    np.testing.assert_allclose(ops.to_float(loss), loss_ref, rtol=1e-4)
    np.testing.assert_allclose(host(ops, grad), grad_ref, rtol=1e-4, atol=1e-7)
    run(ops.softmax_cross_entropy, logits, probs, target, grad, sparse=sparse, rate=(n, "samples/s"))
