"""Parameter dtypes each backend trains: ``compile`` refuses the others with an error naming the
dtype and what is supported, before anything reaches a kernel. The CuPy backend's fused kernels
are instantiated for float32 and float64 only; the NumPy backend also trains float16 (on its
reference operations). The CuPy class is checked here without CuPy, with a stand-in ``cupy``
module so its own declaration (not a copy of it) is what the test reads."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tensornet import Sequential
from tensornet.backend import NumpyBackend, kernels
from tensornet.layers import Dense


def small_model(dtype):
    model = Sequential(dtype=dtype)
    model.add(Dense(4, activation="relu", input_shape=(3,)))
    model.add(Dense(2, activation="softmax"))
    return model


def test_numpy_backend_trains_float16_parameters():
    model = small_model("float16").compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                                           backend="numpy")
    x = np.random.default_rng(0).random((8, 3)).astype(np.float16)
    model.fit(x, np.arange(8) % 2, epochs=1, verbose=0)
    assert all(w.dtype == np.float16 for w in model.get_weights())


def test_a_backend_without_float16_refuses_it_at_compile_naming_the_dtype():
    class Float32And64Only(NumpyBackend):
        name = "float32/float64-only"
        parameter_dtypes = ("float32", "float64")

    backend = Float32And64Only()
    with pytest.raises(ValueError, match=r"trains float32, float64 parameters; this model's dtype is float16"):
        small_model("float16").compile(optimizer="sgd", loss="mse", backend=backend)
    small_model("float64").compile(optimizer="sgd", loss="mse", backend=backend)


def test_bfloat16_is_refused_with_the_supported_list():
    with pytest.raises(ValueError, match=r"dtype must be one of float16, float32, float64; got 'bfloat16'"):
        Sequential(dtype="bfloat16")


def test_cupy_backend_declares_exactly_its_kernel_dtypes_and_refuses_float16_at_compile():
    code = textwrap.dedent("""
        import sys, types
        sys.modules["cupy"] = types.ModuleType("cupy")
        sys.modules["cupyx"] = types.ModuleType("cupyx")
        from tensornet.backend.cupy_backend import CupyBackend
        from tensornet.backend import kernels
        from tensornet import Sequential
        from tensornet.layers import Dense
        assert CupyBackend.parameter_dtypes == tuple(kernels.FLOAT_CTYPES) == ("float32", "float64")
        backend = object.__new__(CupyBackend)  # no device needed: compile checks the dtype first
        model = Sequential(dtype="float16")
        model.add(Dense(2, input_shape=(3,)))
        try:
            model.compile(optimizer="adam", loss="mse", backend=backend)
        except ValueError as error:
            print(error)
        else:
            raise SystemExit("float16 was accepted")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "the cupy backend trains float32, float64 parameters; this model's dtype is float16" in result.stdout


def test_the_kernel_dtype_table_is_what_float_ctype_accepts():
    for name in kernels.FLOAT_CTYPES:
        kernels.float_ctype(np.dtype(name))
    with pytest.raises(ValueError, match="float16"):
        kernels.float_ctype(np.dtype("float16"))
