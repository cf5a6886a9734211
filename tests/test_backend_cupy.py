"""The CuPy backend: every fused kernel against the NumPy reference, and its CPU-side contract.

GPU tests (marked ``gpu``; skipped with ``cupy_status()``'s reason where CuPy, the driver or a
device is missing) run each kernel-backed method of ``CupyBackend`` and the same method of
``NumpyBackend`` on the same random non-zero inputs, sizes 1, 7, 1023, 65537 and empty
included, and compare with tolerances by dtype. Outputs are poisoned with NaN before each
launch, so an element the kernel fails to write fails the test. Optimizers run several steps
and compare parameters and state.

CPU tests (always run): importing tensornet needs no CuPy; ``get_backend("cupy")`` says what is
missing; the kernel loader finds every ``kernels/*.cu`` and the name expressions it declares.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest

import tensornet.backend.selection as selection
from tensornet.backend import (BackendUnavailableError, NumpyBackend, cupy_status, get_backend,
                               kernels)

from test_kernels_compile import OPTIMIZER_CASES, OPTIMIZERS, optimizer_arrays

ref = NumpyBackend()
DTYPES = (np.float32, np.float64)
#: Elementwise tolerance by dtype (relative and absolute: values are O(1)).
TOL = {np.float32: dict(rtol=1e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
#: Batch loss sums: the reference adds in the array dtype (pairwise), the kernel in double.
LOSS_RTOL = {np.float32: 1e-5, np.float64: 1e-12}
SIZES = (1, 7, 1023, 65537)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _run_python(code):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TENSORNET_BACKEND", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=env)


# ============================================================================ CPU side
def test_import_tensornet_without_cupy():
    proc = _run_python(
        "import sys; sys.modules['cupy'] = None\n"  # `import cupy` now raises ImportError
        "import tensornet, tensornet.backend, tensornet.backend.kernels as k\n"
        "assert tensornet.backend.get_backend('auto').name == 'numpy'\n"
        "assert sorted(k.FAMILIES) == sorted(k.available_sources())\n"
        "for family in k.FAMILIES: assert k.read_source(family)\n"
        "print('ok')\n")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_import_tensornet_does_not_import_cupy():
    proc = _run_python("import sys, tensornet, tensornet.backend.kernels\n"
                       "print('cupy' in sys.modules)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.fixture
def fresh_selection(monkeypatch):
    """No cached backend instances and no default, restored afterwards."""
    monkeypatch.setattr(selection, "_instances", {})
    monkeypatch.setattr(selection, "_default_name", None)
    monkeypatch.delenv(selection.ENV_VAR, raising=False)


def test_get_backend_cupy_without_cupy_says_cupy_is_missing(monkeypatch, fresh_selection):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(BackendUnavailableError, match="CuPy is not installed"):
        get_backend("cupy")
    assert get_backend("auto").name == "numpy"


@pytest.mark.parametrize("reason", [
    "CuPy imports but finds no usable CUDA driver (test)",
    "CuPy and the CUDA driver are present but no GPU device is visible",
])
def test_get_backend_cupy_names_the_missing_piece(monkeypatch, fresh_selection, reason):
    monkeypatch.setattr(selection, "cupy_status", lambda: (False, reason))
    with pytest.raises(BackendUnavailableError) as info:
        get_backend("cupy")
    assert reason in str(info.value) and "cupy" in str(info.value)
    assert selection.resolve_name("auto") == "numpy"


def test_loader_finds_every_kernel_source():
    sources = kernels.available_sources()
    assert sorted(sources) == sorted(kernels.FAMILIES), \
        "every kernels/*.cu is a declared family and every family has its .cu"
    for family in kernels.FAMILIES:
        assert kernels.source_path(family).name == f"{family}.cu"
    assert (kernels.kernel_dirs()[-2] / "activations.cu").is_file()  # the repository's kernels/


@pytest.mark.parametrize("family", sorted(kernels.FAMILIES))
def test_each_source_defines_and_instantiates_its_kernels(family):
    source = kernels.read_source(family)
    names = kernels.name_expressions(family)
    assert len(set(names)) == len(names) and names
    for template in kernels.template_names(family):
        assert re.search(rf"__global__\s+void\s+{template}\s*\(", source), template
        for ctype in ("float", "double"):  # the dtype is part of every kernel's name
            assert any(n.startswith(f"{template}<{ctype}") for n in names), (template, ctype)
    # the nvcc check block instantiates exactly the declared name expressions
    block = re.search(r"#ifdef TENSORNET_NVCC_CHECK(.*?)#endif", source, re.S)
    assert block, "missing the TENSORNET_NVCC_CHECK instantiation block"
    instantiated = re.findall(r"^\s*\(const void\*\)&(\S.*>),\s*$", block.group(1), re.M)
    assert sorted(instantiated) == sorted(names)
    # the header gives the compile command
    assert f"nvcc -std=c++17 --fmad=false -arch=sm_80 -DTENSORNET_NVCC_CHECK -c kernels/{family}.cu" \
        in source


def test_loader_rejects_unknown_names_without_cupy():
    with pytest.raises(KeyError, match="not a kernel of family"):
        kernels.get_kernel("optimizers", "sgd_update<half>")
    with pytest.raises(KeyError, match="unknown kernel family"):
        kernels.source_path("no_such_family")
    assert kernels.float_ctype(np.dtype("float32")) == "float"
    assert kernels.float_ctype(np.float64) == "double"
    with pytest.raises(ValueError, match="float32 or float64"):
        kernels.float_ctype(np.dtype("float16"))


def test_loader_searches_the_environment_directory_first(monkeypatch, tmp_path):
    (tmp_path / "optimizers.cu").write_text("// replacement\n")
    monkeypatch.setenv("TENSORNET_KERNELS_DIR", str(tmp_path))
    assert kernels.source_path("optimizers") == tmp_path / "optimizers.cu"
    assert kernels.read_source("optimizers") == "// replacement\n"
    assert kernels.source_path("activations").parent != tmp_path  # falls through to kernels/
    monkeypatch.setenv("TENSORNET_KERNELS_DIR", str(tmp_path / "missing"))
    assert kernels.source_path("optimizers").name == "optimizers.cu"


def test_loader_names_the_directories_it_searched(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "kernel_dirs", lambda: [tmp_path])
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        kernels.read_source("activations")


# ============================================================================ GPU side
@pytest.fixture(scope="module")
def cp():
    usable, reason = cupy_status()
    if not usable:
        pytest.skip(reason)
    import cupy

    return cupy


@pytest.fixture(scope="module")
def gpu(cp):
    backend = get_backend("cupy")
    assert backend.name == "cupy" and backend.xp is cp
    return backend


def _poisoned(cp, shape, dtype):
    return cp.full(shape, cp.nan, dtype=dtype)


def _close(actual, expected, dtype, what=""):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), err_msg=what,
                               **TOL[dtype])


@pytest.mark.gpu
def test_every_kernel_compiles(gpu, cp):
    compiled = kernels.compile_all()
    assert set(compiled) == set(kernels.FAMILIES)
    for family, names in kernels.FAMILIES.items():
        assert sorted(compiled[family]) == sorted(names)
        assert all(regs > 0 for regs in compiled[family].values())
    # cached per (family, device): a second lookup returns the same kernel object
    name = kernels.FAMILIES["optimizers"][0]
    assert kernels.get_kernel("optimizers", name) is kernels.get_kernel("optimizers", name)


@pytest.mark.gpu
def test_device_info_and_transfers(gpu, cp):
    info = gpu.device_info()
    for key in ("device", "name", "compute_capability", "total_memory_bytes", "cuda_runtime",
                "cuda_driver", "cupy"):
        assert info[key], key
    major, minor = cp.cuda.Device().compute_capability[:-1], cp.cuda.Device().compute_capability[-1]
    assert info["compute_capability"] == f"{major}.{minor}"
    assert info["total_memory_bytes"] > 2**30 and info["cupy"] == cp.__version__
    x = gpu.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert gpu.is_array(x) and not gpu.is_array(np.zeros(2))
    host = gpu.to_numpy(x)
    assert isinstance(host, np.ndarray) and host.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert gpu.to_float(x.sum()) == 15.0 and isinstance(gpu.to_float(x.sum()), float)
    gpu.synchronize()


@pytest.mark.gpu
@pytest.mark.parametrize("n", [0, 1, 7, 1023])
def test_permutation_is_the_reference_permutation(gpu, cp, n):
    perm = gpu.permutation(ref.rng(42), n)
    assert isinstance(perm, cp.ndarray) and perm.dtype == np.int64
    np.testing.assert_array_equal(cp.asnumpy(perm), ref.permutation(ref.rng(42), n))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 3, 5), (129, 65, 33)])
def test_matmul_with_out(gpu, cp, dtype, trans_a, trans_b, m, k, n):
    rng = _rng("matmul", m, k, n)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    expected = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    out = _poisoned(cp, (m, n), dtype)
    result = gpu.matmul(cp.asarray(a), cp.asarray(b), out=out, trans_a=trans_a, trans_b=trans_b)
    assert result is out
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(out), expected, **tol)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["linear", "relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 3), (1023, 10), (65537, 3), (0, 5)])
@pytest.mark.parametrize("out_mode", ["new", "given", "inplace"])
def test_bias_activation(gpu, cp, activation, dtype, shape, out_mode):
    rng = _rng("bias_activation", activation, shape)
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    bias = rng.standard_normal(shape[-1]).astype(dtype)
    alpha = 0.1 if activation == "leaky_relu" else 0.0
    z_ref = z.copy()
    expected = ref.bias_activation(z_ref, bias, activation, alpha=alpha).copy()
    z_dev = cp.asarray(z)
    out = {"new": None, "given": _poisoned(cp, shape, dtype), "inplace": z_dev}[out_mode]
    result = gpu.bias_activation(z_dev, cp.asarray(bias), activation, out=out, alpha=alpha)
    if out is not None:
        assert result is out
    assert isinstance(result, cp.ndarray) and result.dtype == dtype and result.shape == shape
    _close(cp.asnumpy(result), expected, dtype, "out")
    if out_mode != "inplace":
        _close(cp.asnumpy(z_dev), z_ref, dtype, "z (bias added in place)")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (9, 4), (33, 10), (257, 33), (65537, 10), (3, 4099), (0, 10)])
@pytest.mark.parametrize("out_mode", ["new", "given", "inplace"])
def test_bias_activation_softmax_is_one_fused_kernel(gpu, cp, dtype, shape, out_mode):
    """z += bias and softmax per row in one launch (bias_activation_softmax) for 2-D z."""
    rng = _rng("bias_softmax", shape)
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    bias = rng.standard_normal(shape[-1]).astype(dtype)
    z_ref = z.copy()
    expected = ref.bias_activation(z_ref, bias, "softmax").copy()
    z_dev = cp.asarray(z)
    out = {"new": None, "given": _poisoned(cp, shape, dtype), "inplace": z_dev}[out_mode]
    result = gpu.bias_activation(z_dev, cp.asarray(bias), "softmax", out=out)
    if out is not None:
        assert result is out
    assert isinstance(result, cp.ndarray) and result.dtype == dtype and result.shape == shape
    _close(cp.asnumpy(result), expected, dtype, "out")
    if out_mode != "inplace":
        _close(cp.asnumpy(z_dev), z_ref, dtype, "z (bias added in place)")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("size", SIZES + (0,))
@pytest.mark.parametrize("out_mode", ["new", "given", "inplace"])
def test_backprop_activation(gpu, cp, activation, dtype, size, out_mode):
    rng = _rng("backprop", activation, size)
    alpha = 0.2
    x = (rng.standard_normal(size) * 3).astype(dtype)
    y = ref.activation(activation, x, alpha=alpha)
    dy = rng.standard_normal(size).astype(dtype)
    expected = ref.backprop_activation(activation, dy, y, alpha=alpha)
    dy_dev = cp.asarray(dy)
    out = {"new": None, "given": _poisoned(cp, size, dtype), "inplace": dy_dev}[out_mode]
    result = gpu.backprop_activation(activation, dy_dev, cp.asarray(y), out=out, alpha=alpha)
    if out is not None:
        assert result is out
    _close(cp.asnumpy(result), expected, dtype)


SCE_SHAPES = [(1, 1), (1, 10), (7, 3), (33, 10), (1023, 10), (65537, 10), (5, 1000), (3, 4099)]


def _softmax_inputs(shape, dtype, target_kind, scale=4.0):
    rng = _rng("sce", shape, target_kind)
    logits = (rng.standard_normal(shape) * scale).astype(dtype)
    probs = ref.softmax(logits)
    labels = rng.integers(0, shape[1], size=shape[0])
    if target_kind == "onehot":
        target = np.eye(shape[1], dtype=dtype)[labels]
    elif target_kind == "soft":
        target = rng.uniform(0.0, 1.0, shape).astype(dtype)
    else:  # integer labels
        target = labels.astype(target_kind)
    return logits, probs, target


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["onehot", "soft", "int32", "int64"])
@pytest.mark.parametrize("shape", SCE_SHAPES)
@pytest.mark.parametrize("alias", [False, True])
def test_softmax_cross_entropy(gpu, cp, dtype, target_kind, shape, alias):
    sparse = target_kind.startswith("int")
    logits, probs, target = _softmax_inputs(shape, dtype, target_kind)
    grad_ref = np.empty_like(logits)
    loss_ref = ref.softmax_cross_entropy(logits, probs, target, grad_ref, sparse=sparse)
    d_logits, d_probs, d_target = cp.asarray(logits), cp.asarray(probs), cp.asarray(target)
    grad = d_probs if alias else _poisoned(cp, shape, dtype)  # grad_out may be probs
    loss = gpu.softmax_cross_entropy(d_logits, d_probs, d_target, grad, sparse=sparse)
    assert isinstance(loss, cp.ndarray) and loss.shape == () and loss.dtype == dtype
    np.testing.assert_allclose(float(loss), float(loss_ref), rtol=LOSS_RTOL[dtype])
    _close(cp.asnumpy(grad), grad_ref, dtype, "grad")
    np.testing.assert_array_equal(cp.asnumpy(d_logits), logits)  # logits are read only


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["onehot", "soft", "int32", "int64"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (1023, 10), (65537, 10), (3, 4099)])
def test_softmax_cross_entropy_counts_correct_in_the_same_pass(gpu, cp, dtype, target_kind,
                                                               shape):
    sparse = target_kind.startswith("int")
    logits, probs, target = _softmax_inputs(shape, dtype, target_kind)
    if shape[1] > 1:  # ties: equal probabilities count the first index, as numpy.argmax does
        probs[0, :2] = probs[0, :2].max()
    grad_ref = np.empty_like(logits)
    loss_ref = ref.softmax_cross_entropy(logits, probs, target, grad_ref, sparse=sparse)
    correct_ref = ref.count_correct(probs, target, "sparse" if sparse else "categorical")
    grad = _poisoned(cp, shape, dtype)
    loss, correct = gpu.softmax_cross_entropy_count(cp.asarray(logits), cp.asarray(probs),
                                                    cp.asarray(target), grad, sparse=sparse)
    assert correct.dtype == np.int64 and correct.shape == ()
    assert int(correct) == int(correct_ref)
    np.testing.assert_allclose(float(loss), float(loss_ref), rtol=LOSS_RTOL[dtype])
    _close(cp.asnumpy(grad), grad_ref, dtype, "grad")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_is_stable_and_deterministic(gpu, cp, dtype):
    shape = (4097, 17)
    logits, probs, target = _softmax_inputs(shape, dtype, "onehot", scale=300.0)  # exp overflows
    grad_ref = np.empty_like(logits)
    loss_ref = ref.softmax_cross_entropy(logits, probs, target, grad_ref)
    assert np.isfinite(loss_ref)
    args = [cp.asarray(a) for a in (logits, probs, target)]
    losses = []
    for _ in range(3):  # the completion counter is reset by each launch
        grad = _poisoned(cp, shape, dtype)
        losses.append(float(gpu.softmax_cross_entropy(*args, grad)))
        _close(cp.asnumpy(grad), grad_ref, dtype)
    assert losses[0] == losses[1] == losses[2]  # no floating-point atomics
    np.testing.assert_allclose(losses[0], float(loss_ref), rtol=LOSS_RTOL[dtype])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_empty_batch_and_bad_labels(gpu, cp, dtype):
    empty = cp.zeros((0, 10), dtype=dtype)
    loss = gpu.softmax_cross_entropy(empty, empty, empty, cp.zeros((0, 10), dtype=dtype))
    assert float(loss) == 0.0 and loss.dtype == dtype
    loss, correct = gpu.softmax_cross_entropy_count(
        empty, empty, cp.zeros(0, dtype=cp.int64), cp.zeros((0, 10), dtype=dtype), sparse=True)
    assert float(loss) == 0.0 and int(correct) == 0
    logits, probs, labels = _softmax_inputs((6, 4), dtype, "int64")
    labels[2], labels[4] = 4, -1  # out of range: NaN row loss and gradient, other rows intact
    keep = np.array([0, 1, 3, 5])
    grad = _poisoned(cp, (6, 4), dtype)
    loss = gpu.softmax_cross_entropy(cp.asarray(logits), cp.asarray(probs), cp.asarray(labels),
                                     grad, sparse=True)
    assert np.isnan(float(loss))
    grad = cp.asnumpy(grad)
    assert np.isnan(grad[[2, 4]]).all()
    # the other rows: (p - onehot(label)) / N with N = 6, the whole batch
    expected = (probs[keep] - np.eye(4, dtype=dtype)[labels[keep]]) * dtype(1.0 / 6)
    _close(grad[keep], expected, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES + (0,))
@pytest.mark.parametrize("name,config_index", OPTIMIZER_CASES)
def test_optimizer_update_over_several_steps(gpu, cp, name, config_index, size, dtype):
    update = OPTIMIZERS[name][0]
    config, arrays, grads = optimizer_arrays(name, config_index, size, dtype)
    expected = {k: v.copy() for k, v in arrays.items()}
    device = {k: cp.asarray(v) for k, v in arrays.items()}
    for step, g in enumerate(grads):
        update(ref, dict(expected, g=g), config, step)
        update(gpu, dict(device, g=cp.asarray(g)), config, step)
        for key in expected:
            assert np.isfinite(expected[key]).all(), f"{name}: {key} after step {step}"
            _close(cp.asnumpy(device[key]), expected[key], dtype, f"{name}: {key} after step {step}")


@pytest.mark.gpu
def test_kernel_methods_validate_before_launch(gpu, cp):
    w = cp.zeros(8, dtype=cp.float32)
    with pytest.raises(ValueError, match="w must be a cupy array"):
        gpu.sgd_update(np.zeros(8, np.float32), w, None, 0.1, 0.0, False, 0.0)
    with pytest.raises(ValueError, match="g has dtype float64"):
        gpu.sgd_update(w, cp.zeros(8, dtype=cp.float64), None, 0.1, 0.0, False, 0.0)
    with pytest.raises(ValueError, match="velocity must be C-contiguous"):
        gpu.sgd_update(w, w.copy(), cp.zeros(16, dtype=cp.float32)[::2], 0.1, 0.9, False, 0.0)
    with pytest.raises(ValueError, match=r"v_max has shape \(7,\)"):
        gpu.adam_update(w, w.copy(), w.copy(), w.copy(), 0.1, 0.9, 0.999, 1e-7, 0, amsgrad=True,
                        v_max=cp.zeros(7, dtype=cp.float32))
    with pytest.raises(ValueError, match="dy must be float32 or float64"):
        gpu.backprop_relu(cp.zeros(3, dtype=cp.float16), cp.zeros(3, dtype=cp.float16))
    with pytest.raises(ValueError, match="out has dtype float64"):
        gpu.bias_activation(cp.zeros((2, 3), cp.float32), cp.zeros(3, cp.float32), "tanh",
                            out=cp.zeros((2, 3), cp.float64))
    with pytest.raises(ValueError, match="target has dtype float64"):
        z = cp.zeros((2, 3), cp.float32)
        gpu.softmax_cross_entropy(z, z, cp.zeros((2, 3), cp.float64), z.copy())


@pytest.mark.gpu
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_mask_on_the_device(gpu, cp, rate):
    """Values are 0 or 1/(1-rate), the kept fraction is 1-rate within 5 sigma, and the mask is
    a function of the host generator's state (same state, same mask: exact resume)."""
    shape = (257, 389)
    out = _poisoned(cp, shape, "float32")
    mask = gpu.dropout_mask(np.random.default_rng(7), shape, rate, "float32", out=out)
    assert mask is out and mask.dtype == cp.float32
    host = cp.asnumpy(mask)
    assert set(np.unique(host)) <= {0.0, np.float32(1.0 / (1.0 - rate))}
    n = host.size
    kept = np.count_nonzero(host) / n
    assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)
    again = gpu.dropout_mask(np.random.default_rng(7), shape, rate, "float32")
    np.testing.assert_array_equal(cp.asnumpy(again), host)
    other = gpu.dropout_mask(np.random.default_rng(8), shape, rate, "float32")
    assert not np.array_equal(cp.asnumpy(other), host)
