"""Every CUDA kernel of ``kernels/*.cu``, compiled unchanged for the host by the harness in
``tests/cuda_harness``, against the backend's own NumPy reference (:class:`Backend` on NumPy).

Each name expression the backend declares (``tensornet.backend.kernels.FAMILIES``: every
float type, label type and activation) is a test id, launched with the CuPy backend's grid and
block sizes (``tests/cuda_harness/launch.py``) over random, never-zero inputs of sizes 1, 31,
32, 33, 257 and one larger than a whole grid, so that every grid-stride loop wraps; a launch with
one block covers the smallest grid. The optimizer kernels are launched through the CuPy
backend's own argument packing (``CupyOptimizerOps``). Tolerances: float64 1e-12 relative,
float32 4 ulps (glibc's ``expf`` / ``tanhf`` differ from NumPy's by an ulp or two); the softmax
loss sum is compared at 1e-5 (float32) / 1e-12 (float64) relative because the kernel adds row
losses in a different order than NumPy's pairwise sum.
"""
from __future__ import annotations

import numpy as np
import pytest

from tensornet.backend import Backend, kernels
from tensornet.backend.cupy_optimizers import CupyOptimizerOps

from tests.cuda_harness import launch as geometry
from tests.cuda_harness import load_family

pytestmark = pytest.mark.kernels_on_cpu

DTYPES = {c: np.dtype(d) for d, c in kernels.FLOAT_CTYPES.items()}  # "float" -> float32
LABEL_DTYPES = {c: np.dtype(d) for d, c in kernels.LABEL_CTYPES.items()}  # "int" -> int32
STRUCT_ACTIVATIONS = {s: a for a, s in kernels.ACTIVATION_STRUCTS.items()}  # "Relu" -> "relu"
BIG = geometry.elementwise_capacity() + 77  # more elements than one pass of the largest grid
SIZES = (1, 31, 32, 33, 257, BIG)
RTOL = {np.dtype(np.float32): 4 * np.finfo(np.float32).eps, np.dtype(np.float64): 1e-12}


def _template_args(name):
    """``"bias_activation<float, Relu>"`` -> ``["float", "Relu"]``."""
    return [a.strip() for a in name[name.index("<") + 1:-1].split(",")]


def _names(family, template):
    return [n for n in kernels.name_expressions(family) if n.startswith(template + "<")]


def _nonzero(rng, shape, dtype, low=0.05, high=2.0):
    """Random values of magnitude in [low, high), random signs: never zero."""
    x = rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return x.astype(dtype)


def _close(actual, expected, dtype, what):
    np.testing.assert_allclose(actual, expected, rtol=RTOL[np.dtype(dtype)], atol=0, err_msg=what)


def _shape(n):
    """A (rows, features) shape of n elements with more than one feature where n allows."""
    for features in (11, 8, 7, 31, 257):
        if n % features == 0 and n > features:
            return n // features, features
    return 1, n


REFERENCE = Backend()  # the equations over xp = numpy


# ---------------------------------------------------------------- activations
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("name", _names("activations", "bias_activation"))
def test_bias_activation(name, n):
    ctype, struct = _template_args(name)
    dtype, activation = DTYPES[ctype], STRUCT_ACTIVATIONS[struct]
    rng = np.random.default_rng(n)
    rows, features = _shape(n) if n != BIG else (BIG // 7, 7)
    n = rows * features
    z = _nonzero(rng, (rows, features), dtype)
    bias = _nonzero(rng, (features,), dtype)
    alpha = 0.2
    kernel = load_family("activations").get_function(name)
    for in_place in (False, True):
        z_kernel, z_ref = z.copy(), z.copy()
        out = z_kernel if in_place else np.empty_like(z)
        kernel((geometry.elementwise_blocks(n),), (geometry.BLOCK_SIZE,),
               (np.int64(n), z_kernel, bias, out, np.int64(features), dtype.type(alpha)))
        expected = REFERENCE.bias_activation(z_ref, bias, activation,
                                             out=z_ref if in_place else None, alpha=alpha)
        _close(out, expected, dtype, f"{name} out (in place: {in_place})")
        _close(z_kernel, z_ref, dtype, f"{name} z + bias (in place: {in_place})")


@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("name", _names("activations", "activation_backward"))
def test_activation_backward(name, n):
    ctype, struct = _template_args(name)
    dtype, activation = DTYPES[ctype], STRUCT_ACTIVATIONS[struct]
    rng = np.random.default_rng(1000 + n)
    alpha = 0.2
    y = REFERENCE.activation(activation, _nonzero(rng, (n,), dtype), alpha=alpha)
    dy = _nonzero(rng, (n,), dtype)
    kernel = load_family("activations").get_function(name)
    dx = np.empty_like(dy)
    kernel((geometry.elementwise_blocks(n),), (geometry.BLOCK_SIZE,),
           (np.int64(n), dy, y, dx, dtype.type(alpha)))
    expected = REFERENCE.backprop_activation(activation, dy.copy(), y.copy(), alpha=alpha)
    _close(dx, expected, dtype, name)
    in_place = dy.copy()  # dx aliasing dy, as the layers call it
    kernel((geometry.elementwise_blocks(n),), (geometry.BLOCK_SIZE,),
           (np.int64(n), in_place, y, in_place, dtype.type(alpha)))
    _close(in_place, expected, dtype, f"{name} (dx is dy)")


def test_every_activation_has_a_kernel():
    """Each activation the backend maps to a struct is built forward, and backward where
    declared, for every float type."""
    built = set(load_family("activations").names)
    for ctype in DTYPES:
        for activation, struct in kernels.ACTIVATION_STRUCTS.items():
            assert f"bias_activation<{ctype}, {struct}>" in built
            if activation in kernels.BACKWARD_ACTIVATIONS:
                assert f"activation_backward<{ctype}, {struct}>" in built


# ---------------------------------------------------------------- optimizers
class HarnessOptimizers(CupyOptimizerOps):
    """The CuPy backend's optimizer argument packing, launching on the harness with the CuPy
    backend's elementwise grid (``CupyBackend._launch_update`` / ``_launch_elementwise``)."""

    def __init__(self, blocks=None):
        self.blocks = blocks

    def _check_update(self, where, w, g):
        self._check_like(g, "g", w, "w", where)
        return kernels.FLOAT_CTYPES[w.dtype.name], w.dtype.type

    def _check_like(self, x, argument, like, like_name, where, shape=None):
        assert x.dtype == like.dtype and x.shape == like.shape, f"{where}: {argument}"

    def _launch_update(self, where, ctype, w, args):
        blocks = self.blocks or geometry.elementwise_blocks(w.size)
        kernel = load_family("optimizers").get_function(f"{where}<{ctype}>")
        kernel((blocks,), (geometry.BLOCK_SIZE,), (np.int64(w.size),) + tuple(args))


def _positive(rng, n, dtype):
    return rng.uniform(0.05, 1.0, size=n).astype(dtype)


# optimizer kernel -> variants: id -> function(rng, n, dtype) -> (state arrays, other kwargs)
OPTIMIZER_CASES = {
    "sgd_update": {
        "plain": lambda r, n, d: ({}, dict(velocity=None, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0)),
        "momentum": lambda r, n, d: ({"velocity": _nonzero(r, n, d)},
                                     dict(lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0)),
        "nesterov_wd": lambda r, n, d: ({"velocity": _nonzero(r, n, d)},
                                        dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    },
    "rmsprop_update": {
        "plain": lambda r, n, d: ({"mean_square": _positive(r, n, d)},
                                  dict(lr=0.01, rho=0.9, epsilon=1e-7, momentum=0.0, velocity=None,
                                       centered=False, mean_grad=None)),
        "centered_momentum": lambda r, n, d: (
            {"mean_square": _positive(r, n, d) + 1, "mean_grad": _nonzero(r, n, d, 0.01, 0.5),
             "velocity": _nonzero(r, n, d)},
            dict(lr=0.01, rho=0.9, epsilon=1e-7, momentum=0.5, centered=True)),
    },
    "adagrad_update": {
        "plain": lambda r, n, d: ({"accumulator": _positive(r, n, d)}, dict(lr=0.01, epsilon=1e-7)),
    },
    "adadelta_update": {
        "plain": lambda r, n, d: ({"accum_grad": _positive(r, n, d), "accum_delta": _positive(r, n, d)},
                                  dict(lr=1.0, rho=0.95, epsilon=1e-7)),
    },
    "adam_update": {
        "plain": lambda r, n, d: ({"m": _nonzero(r, n, d), "v": _positive(r, n, d)},
                                  dict(lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, t=3)),
        "amsgrad": lambda r, n, d: ({"m": _nonzero(r, n, d), "v": _positive(r, n, d),
                                     "v_max": _positive(r, n, d)},
                                    dict(lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, t=3, amsgrad=True)),
    },
    "adamax_update": {
        "plain": lambda r, n, d: ({"m": _nonzero(r, n, d), "u": _positive(r, n, d)},
                                  dict(lr=2e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, t=4)),
    },
    "nadam_update": {
        "plain": lambda r, n, d: ({"m": _nonzero(r, n, d), "v": _positive(r, n, d)},
                                  dict(lr=2e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, mu_t=0.895,
                                       mu_next=0.8951, mu_product=0.7, t=5)),
    },
}

OPTIMIZER_PARAMS = [pytest.param(name, variant, id=f"{name}-{variant}")
                    for name in kernels.name_expressions("optimizers")
                    for variant in OPTIMIZER_CASES.get(name.split("<")[0], {"missing": None})]


def test_every_optimizer_kernel_has_a_case():
    assert set(OPTIMIZER_CASES) == set(kernels.OPTIMIZER_KERNELS)


def _run_optimizer(name, variant, n, blocks=None):
    template, ctype = name.split("<")[0], _template_args(name)[0]
    dtype = DTYPES[ctype]
    rng = np.random.default_rng(n + 7 * len(variant))
    state, kwargs = OPTIMIZER_CASES[template][variant](rng, n, dtype)
    w, g = _nonzero(rng, n, dtype), _nonzero(rng, n, dtype)
    ours = {"w": w.copy(), "g": g.copy(), **{k: v.copy() for k, v in state.items()}}
    ref = {"w": w.copy(), "g": g.copy(), **{k: v.copy() for k, v in state.items()}}
    getattr(HarnessOptimizers(blocks), template)(**ours, **kwargs)
    getattr(REFERENCE, template)(**ref, **kwargs)
    for key in ours:
        _close(ours[key], ref[key], dtype, f"{name} {variant}: {key}")


@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("name,variant", OPTIMIZER_PARAMS)
def test_optimizer_update(name, variant, n):
    _run_optimizer(name, variant, n)


@pytest.mark.parametrize("name,variant", OPTIMIZER_PARAMS)
def test_optimizer_update_one_block(name, variant):
    """One block over 2.5 blocks' worth of elements: each thread loops three times."""
    _run_optimizer(name, variant, geometry.BLOCK_SIZE * 5 // 2, blocks=1)


# ---------------------------------------------------------------- softmax cross-entropy
SOFTMAX_ROWS = (1, 31, 32, 33, 257, geometry.softmax_capacity() + 5)
SOFTMAX_COLS = (1, 10, 33)
LOSS_NAMES = [n for n in kernels.name_expressions("softmax_cross_entropy") if "cross_entropy<" in n]


def _softmax_case(name, rows, cols, rng):
    args = _template_args(name)
    dtype = DTYPES[args[0]]
    logits = _nonzero(rng, (rows, cols), dtype, 0.1, 4.0)
    probs = REFERENCE.softmax(logits.copy())
    if name.startswith("sparse"):
        target = rng.integers(0, cols, size=rows).astype(LABEL_DTYPES[args[1]])
    else:
        target = rng.uniform(0.05, 1.0, size=(rows, cols))
        target = (target / target.sum(axis=1, keepdims=True)).astype(dtype)
        target[::3] = np.eye(cols, dtype=dtype)[rng.integers(0, cols, size=len(target[::3]))]
    return dtype, logits, probs, target


def _launch_softmax(name, logits, probs, target, grad, count, counter, blocks=None):
    rows, cols = logits.shape
    blocks = blocks or geometry.softmax_blocks(rows)
    loss = np.zeros((), dtype=logits.dtype)
    correct = np.zeros((), dtype=np.int64)
    kernel = load_family("softmax_cross_entropy").get_function(name)
    kernel((blocks,), (geometry.BLOCK_SIZE,),
           (np.int64(rows), np.int64(cols), logits, probs, target, grad,
            logits.dtype.type(1.0 / rows), np.int32(count), np.zeros(blocks, np.float64),
            np.zeros(blocks, np.int64), counter, loss, correct))
    return loss, correct


def _close_grad(grad, grad_ref, probs, target, sparse, dtype, what):
    """Dense targets: (p sum_k t_k - t) / N with sum_k t_k added in another order (a warp
    reduction) cancels when p is close to t, so the bound is 4 ulps of the terms,
    4 eps (|p| sum_k t_k + |t|) / N, not of the result. Sparse: 4 ulps of the result."""
    if sparse:
        _close(grad, grad_ref, dtype, what)
        return
    eps = np.finfo(dtype).eps
    terms = (np.abs(probs) * target.sum(axis=1, keepdims=True) + np.abs(target)) / len(grad)
    excess = np.abs(grad.astype(np.float64) - grad_ref) - 4 * eps * terms
    assert (excess <= 0).all(), f"{what}: worst excess {excess.max()} at {np.unravel_index(excess.argmax(), excess.shape)}"


@pytest.mark.parametrize("cols", SOFTMAX_COLS, ids=lambda c: f"cols{c}")
@pytest.mark.parametrize("rows", SOFTMAX_ROWS, ids=lambda r: f"rows{r}")
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_softmax_cross_entropy(name, rows, cols):
    rng = np.random.default_rng(rows * 100 + cols)
    dtype, logits, probs, target = _softmax_case(name, rows, cols, rng)
    sparse = name.startswith("sparse")
    grad_ref = np.empty_like(logits)
    loss_ref = REFERENCE.softmax_cross_entropy(logits.copy(), probs.copy(), target.copy(), grad_ref,
                                               sparse=sparse)
    correct_ref = REFERENCE.count_correct(probs, target, "sparse" if sparse else "categorical")
    counter = np.zeros((), dtype=np.uint32)
    for count in (1, 0, 1):  # the counter the last block resets is reused by the next launch
        grad = np.full_like(logits, np.nan)
        loss, correct = _launch_softmax(name, logits, probs, target, grad, count, counter)
        assert counter == 0, "the last block must reset the completion counter"
        _close_grad(grad, grad_ref, probs, target, sparse, dtype, f"{name} grad")
        np.testing.assert_allclose(loss, loss_ref, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   err_msg=f"{name} loss")
        assert loss.dtype == dtype
        assert int(correct) == (int(correct_ref) if count else 0), f"{name} correct"


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_softmax_cross_entropy_grad_in_place_one_block(name):
    """grad aliasing probs (as the loss layer calls it) and one block for many rows."""
    rng = np.random.default_rng(5)
    dtype, logits, probs, target = _softmax_case(name, 100, 10, rng)
    sparse = name.startswith("sparse")
    grad_ref = np.empty_like(logits)
    loss_ref = REFERENCE.softmax_cross_entropy(logits.copy(), probs.copy(), target.copy(), grad_ref,
                                               sparse=sparse)
    grad = probs.copy()
    loss, correct = _launch_softmax(name, logits, grad, target, grad, 1, np.zeros((), np.uint32), blocks=1)
    _close_grad(grad, grad_ref, probs, target, sparse, dtype, f"{name} grad (in place)")
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert int(correct) == int(REFERENCE.count_correct(probs, target, "sparse" if sparse else "categorical"))


@pytest.mark.parametrize("name", [n for n in LOSS_NAMES if n.startswith("sparse")])
def test_sparse_softmax_cross_entropy_bad_label_is_nan(name):
    rng = np.random.default_rng(9)
    dtype, logits, probs, target = _softmax_case(name, 40, 10, rng)
    target[7] = 10
    grad = np.empty_like(logits)
    loss, _ = _launch_softmax(name, logits, probs, target, grad, 0, np.zeros((), np.uint32))
    assert np.isnan(loss)
    assert np.isnan(grad[7]).all() and not np.isnan(np.delete(grad, 7, axis=0)).any()


# ---------------------------------------------------------------- output layer: bias + softmax
BIAS_SOFTMAX_NAMES = _names("softmax_cross_entropy", "bias_activation_softmax")
SOFTMAX_RTOL = {np.dtype(np.float32): 8 * np.finfo(np.float32).eps, np.dtype(np.float64): 1e-12}


def _launch_bias_softmax(name, z, bias, out, blocks=None):
    rows, cols = z.shape
    kernel = load_family("softmax_cross_entropy").get_function(name)
    kernel((blocks or geometry.softmax_blocks(rows),), (geometry.BLOCK_SIZE,),
           (np.int64(rows), np.int64(cols), z, bias, out))


@pytest.mark.parametrize("cols", (1, 10, 31, 32, 33, 257), ids=lambda c: f"cols{c}")
@pytest.mark.parametrize("rows", SOFTMAX_ROWS, ids=lambda r: f"rows{r}")
@pytest.mark.parametrize("name", BIAS_SOFTMAX_NAMES)
def test_bias_activation_softmax(name, rows, cols):
    """z += bias and out = softmax(z) per row, against ``Backend.bias_activation(..., "softmax")``;
    the probabilities to 8 ulps (the row sum is added in another order, in double)."""
    dtype = DTYPES[_template_args(name)[0]]
    rng = np.random.default_rng(rows * 1000 + cols)
    z = _nonzero(rng, (rows, cols), dtype, 0.1, 6.0)
    bias = _nonzero(rng, (cols,), dtype)
    z_ref = z.copy()
    out_ref = REFERENCE.bias_activation(z_ref, bias, "softmax", out=np.empty_like(z))
    for in_place in (False, True):
        z_kernel = z.copy()
        out = z_kernel if in_place else np.full_like(z, np.nan)
        _launch_bias_softmax(name, z_kernel, bias, out)
        if not in_place:
            np.testing.assert_array_equal(z_kernel, z_ref, err_msg=f"{name}: z += bias")
        np.testing.assert_allclose(out, out_ref, rtol=SOFTMAX_RTOL[np.dtype(dtype)], atol=0,
                                   err_msg=f"{name} in_place={in_place}")


@pytest.mark.parametrize("name", BIAS_SOFTMAX_NAMES)
def test_bias_activation_softmax_one_block_and_non_finite_rows(name):
    """One block grid-strides over every row; a NaN makes its row NaN and leaves the others."""
    dtype = DTYPES[_template_args(name)[0]]
    rng = np.random.default_rng(11)
    z = _nonzero(rng, (45, 12), dtype)
    z[3, 5] = np.nan
    bias = _nonzero(rng, (12,), dtype)
    with np.errstate(invalid="ignore"):
        out_ref = REFERENCE.bias_activation(z.copy(), bias, "softmax", out=np.empty_like(z))
    out = np.empty_like(z)
    _launch_bias_softmax(name, z, bias, out, blocks=1)
    assert np.isnan(out[3]).all() and not np.isnan(np.delete(out, 3, axis=0)).any()
    np.testing.assert_allclose(np.delete(out, 3, axis=0), np.delete(out_ref, 3, axis=0),
                               rtol=SOFTMAX_RTOL[np.dtype(dtype)], atol=0)
