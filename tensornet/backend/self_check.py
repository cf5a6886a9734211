"""Self-check: every operation a backend implements itself (a Numba kernel on the CPU, a CUDA
kernel on the GPU) run on a small random input and compared with the reference of
:class:`~tensornet.backend.base.Backend` on host NumPy (``tensornet info --check``).

An op is checked when the backend's class overrides it; each case draws random, never zero
inputs of awkward sizes (37 rows, 11 columns, 1001 parameters, (3, 7, 6, 4) images), runs the backend's version on
its own arrays and the reference on host copies, and compares the result and every array the op
writes in place, within float32 rounding (rtol 1e-4, atol 1e-5; float64: 1e-10).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy

from .base import Backend
from .conv_ops import conv_geometry

ROWS, COLS, SIZE = 37, 11, 1001


@dataclass
class CheckResult:
    """One case: ``name`` (op and variant), ``passed``, and ``detail`` (the largest error or
    the exception raised)."""

    name: str
    passed: bool
    detail: str


def _inputs(rng, dtype):
    def rand(*shape, low=-2.0, high=2.0):
        x = rng.uniform(low, high, shape)
        x[x == 0] = 0.5
        return x.astype(dtype)

    labels = rng.integers(0, COLS, ROWS).astype(numpy.int64)
    onehot = numpy.eye(COLS, dtype=dtype)[labels]
    logits = rand(ROWS, COLS, low=-4, high=4)
    probs = numpy.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)
    return rand, labels, onehot, logits, probs


def _cases(rng, dtype):
    """``(name, op, args, kwargs)``: args are host arrays and scalars."""
    rand, labels, onehot, logits, probs = _inputs(rng, dtype)
    positive = lambda *shape: rand(*shape, low=0.1, high=2.0)  # noqa: E731 (second moments)
    out = lambda: numpy.zeros((ROWS, COLS), dtype)  # noqa: E731
    cases = []
    for act, alpha in (("linear", 0.0), ("relu", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("softmax", 0.0),
                       ("leaky_relu", 0.2)):
        cases.append((f"bias_activation[{act}]", "bias_activation",
                      (rand(ROWS, COLS), rand(COLS), act), {"out": out(), "alpha": alpha}))
    y = rand(ROWS, COLS, low=0.05, high=0.95)
    for act in ("relu", "sigmoid", "tanh"):
        cases.append((f"backprop_{act}", f"backprop_{act}", (rand(ROWS, COLS), y), {"out": out()}))
    cases.append(("backprop_leaky_relu", "backprop_leaky_relu", (rand(ROWS, COLS), rand(ROWS, COLS), 0.2),
                  {"out": out()}))
    for op in ("softmax_cross_entropy", "softmax_cross_entropy_count"):
        cases.append((f"{op}[one-hot]", op, (logits, probs, onehot, out()), {"sparse": False}))
        cases.append((f"{op}[labels]", op, (logits, probs, labels, out()), {"sparse": True}))
    cases.append(("count_correct[categorical]", "count_correct", (probs, onehot, "categorical"), {}))
    cases.append(("count_correct[sparse]", "count_correct", (probs, labels, "sparse"), {}))
    w, g = lambda: rand(SIZE), lambda: rand(SIZE)  # noqa: E731
    cases += [
        ("sgd_update[plain]", "sgd_update", (w(), g(), None, 0.1, 0.0, False, 0.0), {}),
        ("sgd_update[momentum]", "sgd_update", (w(), g(), rand(SIZE), 0.1, 0.9, False, 1e-3), {}),
        ("sgd_update[nesterov]", "sgd_update", (w(), g(), rand(SIZE), 0.1, 0.9, True, 0.0), {}),
        ("rmsprop_update", "rmsprop_update", (w(), g(), positive(SIZE), 0.01, 0.9, 1e-7, 0.0, None, False, None), {}),
        ("adagrad_update", "adagrad_update", (w(), g(), positive(SIZE), 0.01, 1e-7), {}),
        ("adadelta_update", "adadelta_update", (w(), g(), positive(SIZE), positive(SIZE), 1.0, 0.95, 1e-7), {}),
        ("adam_update", "adam_update", (w(), g(), rand(SIZE), positive(SIZE), 1e-3, 0.9, 0.999, 1e-7, 3), {}),
        ("adam_update[amsgrad]", "adam_update", (w(), g(), rand(SIZE), positive(SIZE), 1e-3, 0.9, 0.999, 1e-7, 3),
         {"amsgrad": True, "v_max": positive(SIZE)}),
        ("adamax_update", "adamax_update", (w(), g(), rand(SIZE), positive(SIZE), 2e-3, 0.9, 0.999, 1e-7, 3), {}),
        ("nadam_update", "nadam_update", (w(), g(), rand(SIZE), positive(SIZE), 1e-3, 0.9, 0.999, 1e-7,
                                          0.95, 0.951, 0.9, 3), {}),
    ]
    return cases + _conv_cases(rand, dtype)


def _conv_cases(rand, dtype):
    """im2col / col2im of a 3x2 kernel (strides 2, 1; dilation 1, 2; "same") and a 2x2 max pool
    ("same", stride 2, an odd width) over (3, 7, 6, 4) images; the backward inputs come from the
    reference's forward, so ``argmax`` is a valid window offset everywhere."""
    x = rand(3, 7, 6, 4)
    rows, cols = conv_geometry(x.shape[1:], (3, 2), (2, 1), (1, 2), "same")
    patches = Backend().im2col(x, rows, cols)
    pool_rows, pool_cols = conv_geometry((7, 5, 4), (2, 2), (2, 2), (1, 1), "same")
    pooled = rand(3, 7, 5, 4)
    y, argmax = Backend().max_pool2d(pooled, pool_rows, pool_cols)
    return [
        ("im2col", "im2col", (x, rows, cols), {}),
        ("col2im", "col2im", (rand(*patches.shape), x.shape, rows, cols), {}),
        ("max_pool2d", "max_pool2d", (pooled, pool_rows, pool_cols), {}),
        ("max_pool2d_backward", "max_pool2d_backward", (rand(*y.shape), argmax.copy(), pooled.shape,
                                                        pool_rows, pool_cols), {}),
    ]


def overridden(backend, op) -> bool:
    """True when ``backend``'s class implements ``op`` itself rather than inheriting the reference."""
    return getattr(type(backend), op, None) is not getattr(Backend, op, None)


def _flat(value):
    return list(value) if isinstance(value, tuple) else [value]


def _compare(actual, expected, dtype):
    tol = (1e-10, 1e-10) if numpy.dtype(dtype) == numpy.float64 else (1e-4, 1e-5)
    worst = 0.0
    for a, e in zip(actual, expected):
        if a is None and e is None:
            continue
        a, e = numpy.asarray(a, dtype=numpy.float64), numpy.asarray(e, dtype=numpy.float64)
        if a.shape != e.shape:
            return False, f"shape {a.shape}, reference {e.shape}"
        if not numpy.allclose(a, e, rtol=tol[0], atol=tol[1]):
            return False, f"max error {numpy.max(numpy.abs(a - e)):.3g}"
        worst = max(worst, float(numpy.max(numpy.abs(a - e), initial=0.0)))
    return True, f"max error {worst:.3g}"


def check_backend(backend, dtypes=("float32", "float64"), seed=0):
    """Run every case of an op ``backend`` overrides, for each dtype; a list of CheckResult."""
    reference = Backend()
    results = []
    for dtype in dtypes:
        for name, op, args, kwargs in _cases(numpy.random.default_rng(seed), dtype):
            if not overridden(backend, op):
                continue
            label = f"{name} {dtype}"
            host_args = [a.copy() if isinstance(a, numpy.ndarray) else a for a in args]
            host_kwargs = {k: v.copy() if isinstance(v, numpy.ndarray) else v for k, v in kwargs.items()}
            try:
                dev_args = [backend.to_device(a) if isinstance(a, numpy.ndarray) else a for a in args]
                dev_kwargs = {k: backend.to_device(v) if isinstance(v, numpy.ndarray) else v for k, v in kwargs.items()}
                result = getattr(backend, op)(*dev_args, **dev_kwargs)
                expected = getattr(reference, op)(*host_args, **host_kwargs)
                to_host = lambda x: None if x is None else backend.to_numpy(x)  # noqa: E731
                actual = [to_host(r) for r in _flat(result)]
                actual += [to_host(a) for a in dev_args if backend.is_array(a)]
                actual += [to_host(v) for v in dev_kwargs.values() if backend.is_array(v)]
                wanted = _flat(expected) + [a for a in host_args if isinstance(a, numpy.ndarray)]
                wanted += [v for v in host_kwargs.values() if isinstance(v, numpy.ndarray)]
                passed, detail = _compare(actual, wanted, dtype)
            except Exception as exc:  # a failing kernel is reported, not raised
                passed, detail = False, f"{type(exc).__name__}: {exc}"
            results.append(CheckResult(label, passed, detail))
    return results
