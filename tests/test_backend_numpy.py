"""NumpyBackend's fast paths against Backend's reference, on random inputs, in both modes:
Numba's fused kernels (when Numba is installed) and the pure-NumPy fallback."""
import inspect

import numpy as np
import pytest

from tensornet.backend.base import Backend
from tensornet.backend.numpy_backend import NumpyBackend

try:
    from tensornet.backend import _numba_kernels
except ImportError:  # the fast extra is optional
    _numba_kernels = None

MODES = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(_numba_kernels is None,
                                                                   reason="numba not installed"))]
TOL = {np.float32: dict(rtol=2e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
BIG = (_numba_kernels.PARALLEL_MIN if _numba_kernels is not None else 1 << 17) + 5
# (rows, columns): empty, odd, one row, large enough for the threaded kernels
SHAPES = [(0, 7), (1, 1), (3, 10), (17, 33), (128, 512 + 3), (BIG // 100 + 1, 100)]


@pytest.fixture(params=MODES)
def fast(request):
    backend = NumpyBackend()
    backend._set_kernels(request.param)
    assert backend.accelerator == request.param
    yield backend
    backend.finish()  # BLAS' thread count as it was (direct products set it per size)


@pytest.fixture
def ref():
    return Backend()


def _rand(rng, shape, dtype, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _close(actual, expected, dtype):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               **TOL[dtype])


def test_overrides_keep_base_signatures():
    for name, member in vars(NumpyBackend).items():
        if callable(member) and not name.startswith("_") and hasattr(Backend, name):
            assert inspect.signature(member) == inspect.signature(getattr(Backend, name)), name


def test_unknown_kernel_mode_is_rejected(monkeypatch):
    monkeypatch.setenv("TENSORNET_CPU_KERNELS", "fortran")
    with pytest.raises(ValueError, match="TENSORNET_CPU_KERNELS"):
        NumpyBackend()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ["relu", "softmax", "tanh", "linear"])
def test_bias_activation(fast, ref, shape, dtype, activation):
    rng = np.random.default_rng(1)
    z, bias = _rand(rng, shape, dtype), _rand(rng, shape[1:], dtype)
    z_fast, z_ref = z.copy(), z.copy()
    y_fast = fast.bias_activation(z_fast, bias, activation, out=np.empty_like(z))
    y_ref = ref.bias_activation(z_ref, bias, activation, out=np.empty_like(z))
    _close(z_fast, z_ref, dtype)  # z holds z + bias afterwards (the logits)
    _close(y_fast, y_ref, dtype)
    assert fast.bias_activation(z.copy(), bias, activation).shape == shape  # out=None allocates


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_backprop_relu_and_softmax(fast, ref, shape, dtype):
    rng = np.random.default_rng(2)
    dy, y = _rand(rng, shape, dtype), np.maximum(_rand(rng, shape, dtype), 0)
    _close(fast.backprop_relu(dy, y, out=np.empty_like(dy)), ref.backprop_relu(dy, y), dtype)
    _close(fast.backprop_relu(dy, y), ref.backprop_relu(dy, y), dtype)
    in_place = dy.copy()
    fast.backprop_relu(in_place, y, out=in_place)
    _close(in_place, ref.backprop_relu(dy, y), dtype)
    x = _rand(rng, shape, dtype, scale=30.0)
    _close(fast.softmax(x), ref.softmax(x), dtype)
    _close(fast.relu(x), ref.relu(x), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES[1:])  # the reference divides by the batch size
@pytest.mark.parametrize("sparse", [False, True])
def test_softmax_cross_entropy(fast, ref, shape, dtype, sparse):
    rng = np.random.default_rng(3)
    logits = _rand(rng, shape, dtype, scale=10.0)
    probs = ref.softmax(logits)
    labels = rng.integers(0, shape[1], shape[0])
    target = labels if sparse else np.eye(shape[1], dtype=dtype)[labels]
    if not sparse and shape[0]:
        target[0] *= 0.5  # a row summing to 0.5: the gradient is p * sum(t) - t
    g_fast, g_ref = np.empty_like(logits), np.empty_like(logits)
    loss_fast = fast.softmax_cross_entropy(logits, probs, target, g_fast, sparse=sparse)
    loss_ref = ref.softmax_cross_entropy(logits, probs, target, g_ref, sparse=sparse)
    np.testing.assert_allclose(float(loss_fast), float(loss_ref), rtol=1e-5 if dtype == np.float32 else 1e-11,
                               atol=1e-4)
    _close(g_fast, g_ref, dtype)


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_count_correct(fast, ref, shape):
    rng = np.random.default_rng(4)
    pred = rng.random(shape).astype(np.float32)
    target = np.eye(shape[1], dtype=np.float32)[rng.integers(0, shape[1], shape[0])]
    target[: shape[0] // 2] = np.eye(shape[1], dtype=np.float32)[np.argmax(pred[: shape[0] // 2], axis=1)]
    pred[0, :] = 0.25  # ties: the first maximum wins
    assert int(fast.count_correct(pred, target, "categorical")) == int(ref.count_correct(pred, target, "categorical"))
    labels = rng.integers(0, shape[1], shape[0])
    assert int(fast.count_correct(pred, labels, "sparse")) == int(ref.count_correct(pred, labels, "sparse"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(1, 1), (37, 13), (300, 5, 3)])
def test_take_rows_gathers_the_reference_rows(fast, ref, dtype, shape):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 100).astype(dtype) + 1
    index = rng.permutation(shape[0])[: max(1, shape[0] // 3 + 1)]
    expected = ref.take_rows(x, index)
    np.testing.assert_array_equal(fast.take_rows(x, index), expected)
    out = np.full((len(index),) + shape[1:], 7, dtype=dtype)
    assert fast.take_rows(x, index, out=out) is out
    np.testing.assert_array_equal(out, expected)
    assert expected.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 1001, BIG])
@pytest.mark.parametrize("momentum, nesterov, weight_decay", [
    (0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.0), (0.5, True, 1e-3), (0.0, False, 1e-2), (0.9, False, 1e-4)])
def test_sgd_update_several_steps(fast, ref, dtype, size, momentum, nesterov, weight_decay):
    rng = np.random.default_rng(5)
    w_fast = _rand(rng, size, dtype)
    w_ref = w_fast.copy()
    v_fast = np.zeros(size, dtype) if momentum else None
    v_ref = np.zeros(size, dtype) if momentum else None
    for step in range(3):
        g = _rand(rng, size, dtype)
        lr = 0.05 / (1 + 0.1 * step)
        fast.sgd_update(w_fast, g, v_fast, lr, momentum, nesterov, weight_decay)
        ref.sgd_update(w_ref, g, v_ref, lr, momentum, nesterov, weight_decay)
    _close(w_fast, w_ref, dtype)
    if momentum:
        _close(v_fast, v_ref, dtype)


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul(fast, ref, trans_a, trans_b):
    rng = np.random.default_rng(6)
    a = _rand(rng, (7, 5) if trans_a else (5, 7), np.float64)
    b = _rand(rng, (3, 7) if trans_b else (7, 3), np.float64)
    out = np.empty((5, 3))
    result = fast.matmul(a, b, out=out, trans_a=trans_a, trans_b=trans_b)
    assert result is out
    _close(out, ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b), np.float64)
    with pytest.raises(ValueError, match="inner dimensions"):
        fast.matmul(a, a, trans_a=not trans_a, trans_b=not trans_a)
    batched = _rand(rng, (2, 5, 7), np.float64)
    _close(fast.matmul(batched, b, trans_b=trans_b), ref.matmul(batched, b, trans_b=trans_b), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmuls(fast, ref, dtype):
    rng = np.random.default_rng(8)
    x, dz, w = _rand(rng, (9, 5), dtype), _rand(rng, (9, 7), dtype), _rand(rng, (5, 7), dtype)
    products = [(x, dz, np.empty((5, 7), dtype), True, False), (dz, w, np.empty((9, 5), dtype), False, True)]
    for got, want in zip(fast.matmuls(products), ref.matmuls([(a, b, None, ta, tb) for a, b, _, ta, tb in products])):
        _close(got, want, dtype)


@pytest.mark.parametrize("mode", MODES)
def test_training_matches_reference_backend(mode):
    """A few fit epochs on the fast backend follow the reference backend's trajectory."""
    from tensornet.layers import Dense
    from tensornet.models import Sequential
    from tensornet.optimizers import SGD

    rng = np.random.default_rng(7)
    x = rng.standard_normal((97, 20)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 97)]
    weights = []
    for backend in (Backend(), NumpyBackend()):
        if isinstance(backend, NumpyBackend):
            backend._set_kernels(mode)
        model = Sequential([Dense(32, activation="relu", input_shape=(20,)), Dense(4, activation="softmax")], seed=3)
        model.compile(optimizer=SGD(lr=0.1, momentum=0.9, nesterov=True), loss="categorical_crossentropy",
                      metrics=["accuracy"], backend=backend)
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
        weights.append((model.get_weights(), history.history))
    for a, b in zip(weights[0][0], weights[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(weights[0][1][key], weights[1][1][key], rtol=1e-4)


# ---------------------------------------------------------------- adaptive optimizers, dropout
def _nadam_args(step, beta_1=0.9):
    mu = [beta_1 * (1.0 - 0.5 * 0.96 ** (0.004 * (k + 1))) for k in range(step + 2)]
    return mu[step], mu[step + 1], float(np.prod(mu[: step + 1]))


# name -> (state arrays (zeros, or positive for the accumulators), update(backend, w, g, state, step))
ADAPTIVE = {
    "rmsprop": (["ms"], lambda b, w, g, s, k: b.rmsprop_update(w, g, s["ms"], 0.01, 0.9, 1e-7, 0.0, None,
                                                                False, None)),
    "rmsprop_momentum": (["ms", "v"], lambda b, w, g, s, k: b.rmsprop_update(
        w, g, s["ms"], 0.01, 0.9, 1e-7, 0.5, s["v"], False, None)),
    "rmsprop_centered": (["ms", "mg"], lambda b, w, g, s, k: b.rmsprop_update(
        w, g, s["ms"], 0.01, 0.8, 1e-7, 0.0, None, True, s["mg"])),
    "rmsprop_centered_momentum": (["ms", "v", "mg"], lambda b, w, g, s, k: b.rmsprop_update(
        w, g, s["ms"], 0.003, 0.95, 1e-6, 0.9, s["v"], True, s["mg"])),
    "adagrad": (["acc"], lambda b, w, g, s, k: b.adagrad_update(w, g, s["acc"], 0.05, 1e-7)),
    "adadelta": (["eg", "edx"], lambda b, w, g, s, k: b.adadelta_update(w, g, s["eg"], s["edx"], 1.0, 0.95,
                                                                         1e-7)),
    "adam": (["m", "v"], lambda b, w, g, s, k: b.adam_update(w, g, s["m"], s["v"], 0.001 * (k + 1), 0.9, 0.999,
                                                             1e-7, k)),
    "amsgrad": (["m", "v", "vmax"], lambda b, w, g, s, k: b.adam_update(
        w, g, s["m"], s["v"], 0.002, 0.8, 0.99, 1e-7, k, amsgrad=True, v_max=s["vmax"])),
    "adamax": (["m", "u"], lambda b, w, g, s, k: b.adamax_update(w, g, s["m"], s["u"], 0.002, 0.9, 0.999, 1e-7,
                                                                  k)),
    "nadam": (["m", "v"], lambda b, w, g, s, k: b.nadam_update(w, g, s["m"], s["v"], 0.002, 0.9, 0.999, 1e-7,
                                                               *_nadam_args(k), k)),
}


def _state(rng, names, size, dtype):
    """Random non-zero state: signed for first moments / velocity, positive for second moments."""
    state = {n: (_rand(rng, size, dtype, scale=0.1) if n in ("m", "mg")
                 else np.abs(_rand(rng, size, dtype, scale=0.5))) for n in names}
    if "mg" in state:  # a centered RMSprop state keeps ms >= mg^2
        state["ms"] += state["mg"] * state["mg"]
    return state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 7, 1001, BIG])
@pytest.mark.parametrize("rule", list(ADAPTIVE))
def test_adaptive_update_several_steps_match_reference_exactly(fast, ref, rule, size, dtype):
    names, update = ADAPTIVE[rule]
    rng = np.random.default_rng(11)
    w_fast = _rand(rng, size, dtype)
    w_ref = w_fast.copy()
    s_fast = _state(rng, names, size, dtype)
    if rule == "rmsprop_centered_momentum":
        s_fast["v"] = _rand(rng, size, dtype, scale=0.01)  # the velocity is signed
    s_ref = {k: a.copy() for k, a in s_fast.items()}
    for step in range(4):
        g = _rand(rng, size, dtype)
        if size > 2:
            g[1] = 0.0  # a zero gradient
        update(fast, w_fast, g, s_fast, step)
        update(ref, w_ref, g, s_ref, step)
    assert np.isfinite(w_ref).all()
    # same operations in the same order in the array's dtype: identical to the last bit
    np.testing.assert_array_equal(w_fast, w_ref)
    for key in s_ref:
        np.testing.assert_array_equal(s_fast[key], s_ref[key], err_msg=key)


@pytest.mark.parametrize("mode", MODES)
def test_adaptive_update_falls_back_on_unsuitable_arrays(mode, ref):
    """Strided or mixed-dtype arrays take the reference path (same results)."""
    fast = NumpyBackend()
    fast._set_kernels(mode)
    rng = np.random.default_rng(12)
    base = _rand(rng, 40, np.float32)
    w_fast, w_ref = base[::2].copy(), base[::2].copy()
    g = _rand(rng, 20, np.float32)
    m_fast = np.zeros(40, np.float32)[::2]
    m_ref, v_fast, v_ref = np.zeros(20, np.float32), np.zeros(20, np.float32), np.zeros(20, np.float32)
    fast.adam_update(w_fast, g, m_fast, v_fast, 0.01, 0.9, 0.999, 1e-7, 0)
    ref.adam_update(w_ref, g, m_ref, v_ref, 0.01, 0.9, 0.999, 1e-7, 0)
    np.testing.assert_array_equal(w_fast, w_ref)
    np.testing.assert_array_equal(m_fast, m_ref)
    w64 = base.astype(np.float64)
    fast.adagrad_update(w64, base.copy(), np.ones(40, np.float32), 0.1, 1e-7)  # mixed dtypes
    expected = base.astype(np.float64)
    ref.adagrad_update(expected, base.copy(), np.ones(40, np.float32), 0.1, 1e-7)
    np.testing.assert_array_equal(w64, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape", [(0, 5), (1,), 7, (3, 11), (128, 515), (BIG // 100 + 1, 100)])
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_dropout_mask_matches_reference(fast, ref, shape, dtype, rate):
    expected = ref.dropout_mask(np.random.default_rng(21), shape, rate, dtype)
    assert expected.dtype == dtype
    mask = fast.dropout_mask(np.random.default_rng(21), shape, rate, dtype)
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == dtype
    out = np.full(expected.shape, 7, dtype)
    rng = np.random.default_rng(21)
    assert fast.dropout_mask(rng, shape, rate, dtype, out=out) is out
    np.testing.assert_array_equal(out, expected)
    # the generator advanced exactly as the reference's draw does
    ref_rng = np.random.default_rng(21)
    ref.dropout_mask(ref_rng, shape, rate, dtype)
    assert rng.random() == ref_rng.random()
    # a non-contiguous out still receives the mask
    wide = np.zeros(expected.shape[:-1] + (2 * expected.shape[-1],), dtype) if expected.ndim else None
    if wide is not None:
        strided = wide[..., ::2]
        fast.dropout_mask(np.random.default_rng(21), shape, rate, dtype, out=strided)
        np.testing.assert_array_equal(strided, expected)
    values = set(np.unique(expected).tolist())
    assert values <= {0.0, float(dtype(1.0 / (1.0 - rate)))}


def test_dropout_mask_is_the_documented_draw(ref):
    rng = np.random.default_rng(3)
    u = np.random.default_rng(3).random(size=(50, 60), dtype=np.float32)
    mask = ref.dropout_mask(rng, (50, 60), 0.3, "float32")
    np.testing.assert_array_equal(mask, (u >= np.float32(0.3)) * np.float32(1 / 0.7))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_velocity_never_goes_subnormal(fast, ref, dtype, nesterov):
    """A weight whose gradient stays 0 has its velocity decay by momentum every step; below the
    smallest normal float it is set to +0 (subnormal arithmetic is ~100x slower on x86), on the
    fast path exactly as in the reference. Entries with a live gradient are untouched."""
    tiny = np.finfo(dtype).tiny
    rng = np.random.default_rng(3)
    n = 1000
    g = np.zeros(n, dtype)
    g[::2] = _rand(rng, (n // 2,), dtype)            # odd entries: no gradient, ever
    v0 = np.full(n, 50 * tiny, dtype)                 # about to decay below tiny
    v0[::2] = _rand(rng, (n // 2,), dtype)
    w0 = _rand(rng, (n,), dtype)
    results = []
    for ops in (fast, ref):
        w, v = w0.copy(), v0.copy()
        for _ in range(60):                           # 0.9**60 * 50 < 1: decays past tiny
            ops.sgd_update(w, g, v, 0.01, 0.9, nesterov, 0.0)
        results.append((w, v))
    (w_fast, v_fast), (w_ref, v_ref) = results
    np.testing.assert_array_equal(v_fast, v_ref)
    np.testing.assert_array_equal(w_fast, w_ref)
    assert np.all(v_ref[1::2] == 0) and not np.signbit(v_ref[1::2]).any()
    live = v_ref[::2]
    assert np.all((live == 0) | (np.abs(live) >= tiny))
