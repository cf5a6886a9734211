"""Every CUDA kernel compiles, offline, without a GPU; its formulas match the NumPy reference.

- nvcc: each ``kernels/<family>.cu`` is compiled with ``-DTENSORNET_NVCC_CHECK`` (which
  instantiates every declared name expression, float and double) for sm_80 and sm_90; ptxas
  must report one entry function per name expression and no register spills.
- NVRTC (through CuPy's bindings, when its library is installed): each family compiles with
  the loader's exact options and every name expression lowers to a symbol; with nvcc as well,
  the two compilers agree on the symbols.
- Host build: every elementwise kernel's per-element body (``*_element``, ``__host__
  __device__``) is compiled by nvcc into a host library, and ``CupyBackend`` (loaded with a
  stand-in ``cupy`` module and ``xp = numpy``) launches it through a host loop: the whole
  Python side (validation, scalar preparation, argument order) and the kernel formulas are
  checked against the reference ``Backend`` (the formulas of its docstrings, on NumPy) without
  a GPU; the optimizer and activation-gradient kernels must match it bit for bit. The warp-level softmax kernel is checked on
  the GPU only (tests/test_backend_cupy.py).

Each test skips when its compiler is absent.
"""
from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import zlib

import numpy as np
import pytest

from tensornet.backend import Backend
from tensornet.backend import kernels

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
ARCHS = ("sm_80", "sm_90")
FAMILIES = sorted(kernels.FAMILIES)
SOURCES = sorted(set(kernels.FAMILIES) | set(kernels.available_sources()))  # every kernels/*.cu
HOST_FAMILIES = ("activations", "optimizers")  # elementwise: per-element bodies run on the host


def _nvcc(args, cwd=None):
    proc = subprocess.run([NVCC, *args], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert proc.returncode == 0, f"nvcc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _nvrtc():
    """CuPy's NVRTC bindings when the NVRTC library loads, else None."""
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception:
        return None
    return nvrtc


def _nvrtc_lowered_names(nvrtc, family, arch):
    """Compile ``family`` the way the loader does (plus the option CuPy adds) for ``arch``;
    return {name expression: lowered symbol}."""
    program = nvrtc.createProgram(kernels.read_source(family), f"{family}.cu", [], [])
    try:
        for name in kernels.name_expressions(family):
            nvrtc.addNameExpression(program, name)
        options = [*kernels.OPTIONS, "--device-as-default-execution-space", f"-arch={arch}"]
        try:
            nvrtc.compileProgram(program, options)
        except nvrtc.NVRTCError:
            pytest.fail(f"NVRTC failed on {family}.cu:\n{nvrtc.getProgramLog(program)}")
        assert len(nvrtc.getCUBIN(program)) > 0
        return {name: nvrtc.getLoweredName(program, name)
                for name in kernels.name_expressions(family)}
    finally:
        nvrtc.destroyProgram(program)


# ---------------------------------------------------------------------------- compilation
@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("family", SOURCES)
def test_nvcc_compiles_every_kernel(family, arch, tmp_path):
    source = kernels.available_sources().get(family) or kernels.source_path(family)
    proc = _nvcc(["-std=c++17", "--fmad=false", f"-arch={arch}", "-DTENSORNET_NVCC_CHECK",
                  "-Xptxas", "-v", "-c", str(source), "-o", str(tmp_path / f"{family}.o")])
    entries = re.findall(r"Compiling entry function '(\w+)' for '(\w+)'", proc.stderr)
    symbols = {symbol for symbol, _ in entries}
    assert {target for _, target in entries} == {arch}
    assert family in kernels.FAMILIES, f"{source} declares no kernels in tensornet/backend/kernels.py"
    assert len(symbols) == len(kernels.name_expressions(family)), proc.stderr
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", proc.stderr)]
    assert spills and not any(spills), proc.stderr
    nvrtc = _nvrtc()
    if nvrtc is not None:  # both compilers instantiate exactly the declared kernels
        assert set(_nvrtc_lowered_names(nvrtc, family, arch).values()) == symbols


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("family", FAMILIES)
def test_nvrtc_compiles_every_name_expression(family, arch):
    nvrtc = _nvrtc()
    if nvrtc is None:
        pytest.skip("CuPy's NVRTC bindings or the NVRTC library are not installed")
    lowered = _nvrtc_lowered_names(nvrtc, family, arch)
    assert len(set(lowered.values())) == len(lowered)


# ---------------------------------------------------------------------------- host build
HARNESS = r"""
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include "{family}.cu"

// Calls F(i, args...) for i < n, each argument read from the pointer args[k].
template <typename F> struct Caller;
template <typename... A> struct Caller<void (*)(long long, A...)> {{
    template <void (*F)(long long, A...), std::size_t... I>
    static void loop(long long n, void** args, std::index_sequence<I...>) {{
        for (long long i = 0; i < n; ++i) F(i, *static_cast<std::decay_t<A>*>(args[I])...);
    }}
    template <void (*F)(long long, A...)>
    static void run(long long n, void** args) {{ loop<F>(n, args, std::index_sequence_for<A...>{{}}); }}
}};

struct Entry {{ const char* name; void (*run)(long long, void**); }};
static const Entry entries[] = {{
{entries}
}};

extern "C" int tn_host_call(const char* name, long long n, void** args) {{
    for (const Entry& e : entries) {{
        if (std::strcmp(e.name, name) == 0) {{ e.run(n, args); return 0; }}
    }}
    return -1;
}}
"""


def _element_function(name_expression):
    """``sgd_update<float>`` -> ``sgd_update_element<float>``."""
    base, args = name_expression.split("<", 1)
    return f"{base}_element<{args}"


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    """{family: ctypes library} of the per-element kernel bodies, built for the host."""
    if NVCC is None:
        pytest.skip("nvcc is not on PATH")
    build = tmp_path_factory.mktemp("host_kernels")
    libraries = {}
    for family in HOST_FAMILIES:
        entries = ",\n".join(
            f'    {{"{name}", &Caller<decltype(&{_element_function(name)})>::run'
            f'<&{_element_function(name)}>}}' for name in kernels.name_expressions(family))
        source = build / f"host_{family}.cu"
        source.write_text(HARNESS.format(family=family, entries=entries))
        library = build / f"libhost_{family}.so"
        _nvcc(["-std=c++17", "--fmad=false", "-shared", "-Xcompiler", "-fPIC,-ffp-contract=off",
               "-I", str(kernels.source_path(family).parent), str(source), "-o", str(library)])
        lib = ctypes.CDLL(str(library))
        lib.tn_host_call.restype = ctypes.c_int
        lib.tn_host_call.argtypes = [ctypes.c_char_p, ctypes.c_longlong,
                                     ctypes.POINTER(ctypes.c_void_p)]
        libraries[family] = lib
    return libraries


_CTYPES = {np.float32: ctypes.c_float, np.float64: ctypes.c_double, np.int64: ctypes.c_longlong,
           np.int32: ctypes.c_int}


def _host_backend_class(stub_module, host_kernels):
    """CupyBackend on NumPy arrays; its launches run the kernel bodies of ``host_kernels`` on
    the host (with no host build, any launch fails the test)."""

    class HostCupyBackend(stub_module.CupyBackend):
        xp = np
        launches = []

        def _multiprocessors(self):
            return 1

        def _launch(self, family, name, blocks, args):
            assert int(blocks) >= 1
            if family not in host_kernels:
                raise NotImplementedError(f"{family} has no host build")
            n, *rest = args
            holders = []
            for value in rest:
                if isinstance(value, np.ndarray):
                    holders.append(ctypes.c_void_p(value.ctypes.data))
                else:
                    holders.append(_CTYPES[type(value)](value))
            argv = (ctypes.c_void_p * max(len(holders), 1))(
                *[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders])
            assert isinstance(n, np.int64) and n > 0
            status = host_kernels[family].tn_host_call(name.encode(), int(n), argv)
            assert status == 0, f"no host entry for {name}"
            self.launches.append(name)

    backend = HostCupyBackend()
    backend.launches = []
    return backend


@pytest.fixture
def host_backend(stub_cupy_backend_module, host_kernels):
    """CupyBackend on NumPy arrays, its launches running the kernel bodies on the host."""
    return _host_backend_class(stub_cupy_backend_module, host_kernels)


@pytest.fixture
def unlaunchable_backend(stub_cupy_backend_module):
    """CupyBackend on NumPy arrays that fails on any launch (no compiler needed)."""
    return _host_backend_class(stub_cupy_backend_module, {})


SIZES = (1, 7, 1023, 4099)
DTYPES = (np.float32, np.float64)


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _assert_close(actual, expected, dtype, exact=False, what=""):
    if exact:
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        tol = 2e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["linear", "relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (33, 31), (0, 4)])
@pytest.mark.parametrize("out_mode", ["new", "given", "inplace"])
def test_host_bias_activation(host_backend, activation, dtype, shape, out_mode):
    ref = Backend()
    rng = _rng("bias", activation, shape)
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    bias = rng.standard_normal(shape[-1]).astype(dtype)
    alpha = 0.1 if activation == "leaky_relu" else 0.0
    z_ref = z.copy()
    expected = ref.bias_activation(z_ref, bias, activation, alpha=alpha).copy()
    out = {"new": None, "given": np.full(shape, np.nan, dtype), "inplace": z}[out_mode]
    result = host_backend.bias_activation(z, bias, activation, out=out, alpha=alpha)
    if out is not None:
        assert result is out
    exact = activation in ("linear", "relu", "leaky_relu")  # no transcendental function
    _assert_close(result, expected, dtype, exact)
    if out_mode != "inplace":
        np.testing.assert_array_equal(z, z_ref)  # z += bias, in place, as the reference does
    assert host_backend.launches == ([] if z.size == 0 else
                                     [f"bias_activation<{kernels.float_ctype(z.dtype)}, "
                                      f"{kernels.ACTIVATION_STRUCTS[activation]}>"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("size", SIZES + (0,))
@pytest.mark.parametrize("out_mode", ["new", "given", "inplace"])
def test_host_backprop(host_backend, activation, dtype, size, out_mode):
    ref = Backend()
    rng = _rng("backprop", activation, size)
    x = (rng.standard_normal(size) * 3).astype(dtype)
    alpha = 0.2
    y = ref.activation(activation, x, alpha=alpha)
    dy = rng.standard_normal(size).astype(dtype)
    expected = ref.backprop_activation(activation, dy, y, alpha=alpha)
    out = {"new": None, "given": np.full(size, np.nan, dtype), "inplace": dy}[out_mode]
    result = host_backend.backprop_activation(activation, dy, y, out=out, alpha=alpha)
    _assert_close(result, expected, dtype, exact=True)


def _state(rng, size, dtype, positive=False):
    values = rng.uniform(0.05, 1.0, size) if positive else rng.standard_normal(size)
    return values.astype(dtype)


# name -> (list of config dicts, function(backend, arrays, config, step)); each run takes the
# same arrays and hyper-parameters on both backends.
def _sgd(backend, a, c, step):
    backend.sgd_update(a["w"], a["g"], a.get("velocity"), c["lr"], c["momentum"], c["nesterov"],
                       c["weight_decay"])


def _rmsprop(backend, a, c, step):
    backend.rmsprop_update(a["w"], a["g"], a["mean_square"], 0.01, 0.9, 1e-7, c["momentum"],
                           a.get("velocity"), c["centered"], a.get("mean_grad"))


def _adagrad(backend, a, c, step):
    backend.adagrad_update(a["w"], a["g"], a["accumulator"], 0.05, 1e-7)


def _adadelta(backend, a, c, step):
    backend.adadelta_update(a["w"], a["g"], a["accum_grad"], a["accum_delta"], 1.0, 0.95, 1e-7)


def _adam(backend, a, c, step):
    backend.adam_update(a["w"], a["g"], a["m"], a["v"], 0.001, 0.9, 0.999, 1e-7, step,
                        amsgrad=c["amsgrad"], v_max=a.get("v_max"))


def _adamax(backend, a, c, step):
    backend.adamax_update(a["w"], a["g"], a["m"], a["u"], 0.002, 0.9, 0.999, 1e-7, step)


def _nadam(backend, a, c, step):
    beta_1 = 0.9
    mu = [beta_1 * (1.0 - 0.5 * 0.96 ** (0.004 * (k + 1))) for k in range(step + 2)]
    mu_product = float(np.prod(mu[: step + 1]))
    backend.nadam_update(a["w"], a["g"], a["m"], a["v"], 0.002, beta_1, 0.999, 1e-7, mu[step],
                         mu[step + 1], mu_product, step)


OPTIMIZERS = {
    "sgd": (_sgd, [
        dict(lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0),
        dict(lr=0.1, momentum=0.0, nesterov=False, weight_decay=1e-3),
        dict(lr=0.05, momentum=0.9, nesterov=False, weight_decay=0.0),
        dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    ], lambda c: ["velocity"] if c["momentum"] else []),
    "rmsprop": (_rmsprop, [
        dict(momentum=0.0, centered=False), dict(momentum=0.9, centered=False),
        dict(momentum=0.0, centered=True), dict(momentum=0.5, centered=True),
    ], lambda c: ["mean_square"] + (["velocity"] if c["momentum"] else [])
        + (["mean_grad"] if c["centered"] else [])),
    "adagrad": (_adagrad, [{}], lambda c: ["accumulator"]),
    "adadelta": (_adadelta, [{}], lambda c: ["accum_grad", "accum_delta"]),
    "adam": (_adam, [dict(amsgrad=False), dict(amsgrad=True)],
             lambda c: ["m", "v"] + (["v_max"] if c["amsgrad"] else [])),
    "adamax": (_adamax, [{}], lambda c: ["m", "u"]),
    "nadam": (_nadam, [{}], lambda c: ["m", "v"]),
}
POSITIVE_STATE = {"mean_square", "accumulator", "accum_grad", "accum_delta", "v", "v_max", "u"}
OPTIMIZER_CASES = [(name, i) for name, (_, configs, _) in OPTIMIZERS.items()
                   for i in range(len(configs))]


def optimizer_arrays(name, config_index, size, dtype, seed=0):
    """Parameters, gradients for 4 steps and starting state of one optimizer test case."""
    _, configs, state_names = OPTIMIZERS[name]
    config = configs[config_index]
    rng = _rng("opt", name, config_index, size, seed)
    arrays = {"w": _state(rng, size, dtype)}
    for key in state_names(config):
        arrays[key] = _state(rng, size, dtype, positive=key in POSITIVE_STATE)
    if "mean_grad" in arrays:  # ms >= mg^2 stays true over the steps (a mean of squares)
        bound = np.sqrt(arrays["mean_square"])
        arrays["mean_grad"] = (rng.uniform(-0.9, 0.9, size) * bound).astype(dtype)
    grads = [_state(rng, size, dtype) for _ in range(4)]
    return config, arrays, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES + (0,))
@pytest.mark.parametrize("name,config_index", OPTIMIZER_CASES)
def test_host_optimizer_updates(host_backend, name, config_index, size, dtype):
    update = OPTIMIZERS[name][0]
    config, arrays, grads = optimizer_arrays(name, config_index, size, dtype)
    expected = {k: v.copy() for k, v in arrays.items()}
    ref = Backend()
    for step, g in enumerate(grads):
        update(ref, dict(expected, g=g), config, step)
        update(host_backend, dict(arrays, g=g), config, step)
        for key in arrays:  # every rounding matches: same operation order, no FMA contraction
            assert np.isfinite(expected[key]).all(), f"{key} step {step}"
            _assert_close(arrays[key], expected[key], dtype, exact=True, what=f"{key} step {step}")
    assert len(host_backend.launches) == (len(grads) if size else 0)


def test_validation_happens_before_launch(unlaunchable_backend):
    host_backend = unlaunchable_backend
    w = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="g has dtype float64"):
        host_backend.sgd_update(w, np.zeros(5, np.float64), None, 0.1, 0.0, False, 0.0)
    with pytest.raises(ValueError, match=r"g has shape \(4,\)"):
        host_backend.sgd_update(w, np.zeros(4, np.float32), None, 0.1, 0.0, False, 0.0)
    with pytest.raises(ValueError, match="velocity is required"):
        host_backend.sgd_update(w, np.zeros(5, np.float32), None, 0.1, 0.9, False, 0.0)
    with pytest.raises(ValueError, match="m must be C-contiguous"):
        host_backend.adam_update(w, w.copy(), np.zeros(10, np.float32)[::2], w.copy(), 0.1, 0.9,
                                 0.999, 1e-7, 0)
    with pytest.raises(ValueError, match="w must be float32 or float64"):
        host_backend.adagrad_update(np.zeros(3, np.int64), np.zeros(3, np.int64),
                                    np.zeros(3, np.int64), 0.1, 1e-7)
    with pytest.raises(ValueError, match=r"bias has shape \(4,\), expected \(3,\)"):
        host_backend.bias_activation(np.zeros((2, 3), np.float32), np.zeros(4, np.float32), "relu")
    with pytest.raises(ValueError, match="y has dtype float64"):
        host_backend.backprop_tanh(np.zeros(3, np.float32), np.zeros(3, np.float64))
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="grad_out has shape"):
        host_backend.softmax_cross_entropy(z, z, z, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="integer labels"):
        host_backend.softmax_cross_entropy(z, z, np.zeros(2, np.float32), z, sparse=True)
    with pytest.raises(ValueError, match="one label per row"):
        host_backend.softmax_cross_entropy(z, z, np.zeros(3, np.int64), z, sparse=True)
    assert host_backend.launches == []


def test_empty_arrays_launch_nothing(unlaunchable_backend):
    host_backend = unlaunchable_backend
    logits = np.zeros((0, 10), np.float32)
    loss = host_backend.softmax_cross_entropy(logits, logits, logits, logits.copy())
    assert loss.shape == () and loss.dtype == np.float32 and float(loss) == 0.0
    loss, correct = host_backend.softmax_cross_entropy_count(
        logits, logits, np.zeros(0, np.int32), logits.copy(), sparse=True)
    assert float(loss) == 0.0 and int(correct) == 0
    w = np.zeros(0, np.float32)
    host_backend.sgd_update(w, w.copy(), w.copy(), 0.1, 0.9, True, 1e-4)
    host_backend.adam_update(w, w.copy(), w.copy(), w.copy(), 0.1, 0.9, 0.999, 1e-7, 3)
    z = np.zeros((0, 5), np.float64)
    assert host_backend.bias_activation(z, np.zeros(5), "tanh").shape == (0, 5)
    assert host_backend.backprop_sigmoid(z, z).shape == (0, 5)
    assert host_backend.launches == []
