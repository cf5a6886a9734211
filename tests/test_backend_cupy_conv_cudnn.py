"""Conv2D through cuDNN on the CuPy backend (:mod:`tensornet.backend.cupy_cudnn`).

On the CPU, :class:`StandInCudnn` takes the place of ``cupy.cudnn``: the three convolution
functions with CuPy's signatures (keyword-only ``auto_tune`` / ``tensor_core``, tuples for pad,
stride and dilation, C-contiguous outputs of exactly the shape cuDNN computes), computing the
cross-correlation from the arguments they are given in NumPy, layouts read from ``d_layout`` /
``w_layout`` as cuDNN reads them. A wrong layout, pad, stride or dilation therefore gives a
wrong result or an error. The backend's ``conv2d`` / ``conv2d_backward`` run on it against the
NumPy reference (:class:`Backend`) on awkward shapes: odd sizes, strides, dilation, "same" with
odd and even kernels (TensorFlow's extra row at the bottom), a 1x1 window, one example. The
selection by ``TENSORNET_CONV``, the fallback to im2col with one warning, and the composition in
the CuPy backend (on the host harness) are tested too; marked ``gpu``: cuDNN against im2col on a
device.

Tolerances: the stand-in adds in another order than the reference's GEMM, so float32 results
agree to rtol 1e-5 / atol 1e-5 on values of order 1."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from tensornet.backend import Backend, cupy_status
from tensornet.backend import cupy_cudnn
from tensornet.backend.conv_ops import conv_geometry
from tensornet.backend.cupy_conv import CupyConvOps

NCHW, NHWC = 0, 1
REFERENCE = Backend()
# (x shape, kernel (kh, kw, c, f), strides, dilation, padding)
CASES = [
    ((2, 7, 6, 3), (3, 3, 3, 4), (1, 1), (1, 1), "same"),
    ((3, 9, 8, 2), (2, 2, 2, 5), (1, 1), (1, 1), "same"),  # even kernel: extra row / col after
    ((2, 8, 9, 5), (3, 2, 5, 3), (2, 3), (1, 1), "same"),
    ((1, 11, 10, 3), (3, 3, 3, 2), (1, 1), (2, 3), "valid"),
    ((2, 10, 11, 2), (3, 2, 2, 4), (2, 1), (2, 2), "same"),
    ((3, 6, 7, 1), (4, 3, 1, 6), (3, 2), (1, 1), "valid"),
    ((2, 5, 5, 4), (1, 1, 4, 3), (2, 2), (1, 1), "same"),
]


class StandInCudnn:
    """``cupy.cudnn``'s convolution functions over NumPy; ``calls`` names each call."""

    nhwc = NHWC

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    # ---------------------------------------------------------------- layouts and checks
    @staticmethod
    def _plain(a):
        return a.view(np.ndarray)

    def _image(self, a, layout):
        a = self._plain(a)
        return a if layout == NHWC else a.transpose(0, 2, 3, 1)

    def _filter(self, w, layout):  # to (k, h, w, c)
        w = self._plain(w)
        return w if layout == NHWC else w.transpose(0, 2, 3, 1)

    def _check(self, name, pad, stride, dilation, groups, tensor_core, outputs):
        self.calls.append(name)
        if name in self.fail:
            raise RuntimeError(f"{name}: CUDNN_STATUS_NOT_SUPPORTED")
        for arg in (pad, stride, dilation):
            if not isinstance(arg, tuple) or len(arg) != 2:
                raise TypeError(f"{name}: pad, stride and dilation must be 2-tuples; got {arg!r}")
        if groups != 1 or tensor_core not in ("auto", "always", "never"):
            raise ValueError(f"{name}: groups {groups}, tensor_core {tensor_core!r}")
        for out in outputs:
            if not out.flags.c_contiguous or out.dtype != np.float32:
                raise ValueError(f"{name}: cupy.cudnn supports c-contiguous arrays only")

    @staticmethod
    def _windows(shape, kshape, pad, stride, dilation):
        out = []
        for axis in range(2):
            effective = dilation[axis] * (kshape[axis] - 1) + 1
            out.append((shape[axis] + 2 * pad[axis] - effective) // stride[axis] + 1)
        return tuple(out)

    @staticmethod
    def _padded(x, pad):
        return np.pad(x, ((0, 0), (pad[0], pad[0]), (pad[1], pad[1]), (0, 0)))

    @staticmethod
    def _slices(u, v, out, stride, dilation):
        return (slice(None), slice(u * dilation[0], u * dilation[0] + stride[0] * (out[0] - 1) + 1, stride[0]),
                slice(v * dilation[1], v * dilation[1] + stride[1] * (out[1] - 1) + 1, stride[1]), slice(None))

    def _geometry(self, name, x, w, y, pad, stride, dilation):
        out = self._windows(x.shape[1:3], w.shape[1:3], pad, stride, dilation)
        if y.shape != (x.shape[0], *out, w.shape[0]) or x.shape[3] != w.shape[3]:
            raise ValueError(f"{name}: CUDNN_STATUS_BAD_PARAM (x {x.shape}, W {w.shape}, y {y.shape})")
        return out

    # ---------------------------------------------------------------- the three functions
    def convolution_forward(self, x, W, b, y, pad, stride, dilation, groups, *, auto_tune, tensor_core,
                            d_layout=NCHW, w_layout=NCHW):
        self._check("forward", pad, stride, dilation, groups, tensor_core, [y])
        xs, ws, ys = self._image(x, d_layout), self._filter(W, w_layout), self._image(y, d_layout)
        out = self._geometry("forward", xs, ws, ys, pad, stride, dilation)
        p = self._padded(xs, pad)
        result = np.zeros(ys.shape, dtype=np.float32)
        for u in range(ws.shape[1]):
            for v in range(ws.shape[2]):
                result += p[self._slices(u, v, out, stride, dilation)] @ ws[:, u, v, :].T
        if b is not None:
            result += self._plain(b)
        ys[...] = result

    def convolution_backward_filter(self, x, gy, gW, pad, stride, dilation, groups, *, deterministic,
                                    auto_tune, tensor_core, d_layout=NCHW, w_layout=NCHW):
        self._check("backward_filter", pad, stride, dilation, groups, tensor_core, [gW])
        xs, gys, gws = self._image(x, d_layout), self._image(gy, d_layout), self._filter(gW, w_layout)
        out = self._geometry("backward_filter", xs, gws, gys, pad, stride, dilation)
        p = self._padded(xs, pad)
        c, f = xs.shape[3], gws.shape[0]
        for u in range(gws.shape[1]):
            for v in range(gws.shape[2]):
                window = p[self._slices(u, v, out, stride, dilation)].reshape(-1, c)
                gws[:, u, v, :] = gys.reshape(-1, f).T @ window

    def convolution_backward_data(self, W, x, b, y, pad, stride, dilation, groups, *, deterministic,
                                  auto_tune, tensor_core, d_layout=NCHW, w_layout=NCHW):
        """``x`` is dy and ``y`` is dx, as cuDNN names them."""
        self._check("backward_data", pad, stride, dilation, groups, tensor_core, [y])
        ws, gys, gxs = self._filter(W, w_layout), self._image(x, d_layout), self._image(y, d_layout)
        out = self._geometry("backward_data", gxs, ws, gys, pad, stride, dilation)
        p = self._padded(np.zeros(gxs.shape, dtype=np.float32), pad)
        for u in range(ws.shape[1]):
            for v in range(ws.shape[2]):
                p[self._slices(u, v, out, stride, dilation)] += gys @ ws[:, u, v, :]
        gxs[...] = p[:, pad[0]:pad[0] + gxs.shape[1], pad[1]:pad[1] + gxs.shape[2], :]


class HostCudnnConv(CupyConvOps, Backend):
    """The CuPy backend's convolution mixins on NumPy arrays, cuDNN played by the stand-in and
    the im2col kernels replaced by the reference (they have their own harness tests)."""

    def __init__(self, cudnn=None, required=False):
        super().__init__()
        self._cudnn, self._cudnn_required = cudnn, required

    def im2col(self, x, rows, cols, out=None):
        return Backend.im2col(self, x, rows, cols, out=out)

    def col2im(self, dcols, x_shape, rows, cols, out=None):
        return Backend.col2im(self, dcols, x_shape, rows, cols, out=out)


def _nonzero(rng, shape):
    return (rng.uniform(0.05, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)).astype(np.float32)


def _run(ops, x, kernel, rows, cols, dz, need_dx=True, with_out=True):
    n, f = x.shape[0], kernel.shape[3]
    shape = (n, rows[5], cols[5], f)
    out = np.full(shape, np.nan, np.float32) if with_out else None
    cols_out = np.empty((n * rows[5] * cols[5], rows[0] * cols[0] * x.shape[3]), np.float32) if with_out else None
    z, context = ops.conv2d(x, kernel, None, rows, cols, out=out, cols_out=cols_out)
    dx_out = np.full(x.shape, np.nan, np.float32) if with_out and need_dx else None
    dk_out = np.full(kernel.shape, np.nan, np.float32) if with_out else None
    db_out = np.full((f,), np.nan, np.float32)
    dx, dk, db = ops.conv2d_backward(dz.reshape(-1, f), context, x.shape, kernel, rows, cols, dx_out=dx_out,
                                     dkernel_out=dk_out, dbias_out=db_out, need_dx=need_dx)
    if with_out:
        assert np.shares_memory(z, out) and np.shares_memory(dk, dk_out)
        assert dx is None if not need_dx else np.shares_memory(dx, dx_out)
    return z, dx, dk, db


def _case(case, seed=0):
    shape, kshape, strides, dilation, padding = case
    rng = np.random.default_rng(seed + sum(shape))
    rows, cols = conv_geometry(shape[1:], kshape[:2], strides, dilation, padding)
    x, kernel = _nonzero(rng, shape), _nonzero(rng, kshape)
    dz = _nonzero(rng, (shape[0], rows[5], cols[5], kshape[3]))
    return x, kernel, dz, rows, cols


def _close(ours, theirs):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("with_out", [True, False], ids=["out", "fresh"])
@pytest.mark.parametrize("need_dx", [True, False], ids=["dx", "no-dx"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])) + f"-k{c[1][0]}{c[1][1]}-{c[4]}")
def test_cudnn_conv2d_matches_the_reference(case, need_dx, with_out):
    x, kernel, dz, rows, cols = _case(case)
    cudnn = StandInCudnn()
    z, dx, dk, db = _run(HostCudnnConv(cudnn), x, kernel, rows, cols, dz, need_dx, with_out)
    expected = _run(REFERENCE, x, kernel, rows, cols, dz, need_dx, with_out=False)
    assert cudnn.calls == ["forward", "backward_filter"] + (["backward_data"] if need_dx else [])
    assert z.dtype == dk.dtype == np.float32
    _close(z, expected[0])
    _close(dk, expected[2])
    _close(db, expected[3])
    if need_dx:
        assert dx.shape == x.shape and dx.dtype == np.float32
        _close(dx, expected[1])
    else:
        assert dx is None


def test_the_stand_in_catches_a_wrong_layout():
    x, kernel, _dz, rows, cols = _case(CASES[2])
    cudnn = StandInCudnn()
    cudnn.nhwc = NCHW  # the mixin's arrays are NHWC: read as NCHW they give another result or shape
    ops = HostCudnnConv(cudnn, required=True)
    with pytest.raises(RuntimeError, match="cuDNN failed"):
        ops.conv2d(x, kernel, None, rows, cols)


def test_bias_is_added_and_other_dtypes_take_im2col():
    x, kernel, _dz, rows, cols = _case(CASES[0])
    bias = np.linspace(-1, 1, kernel.shape[3], dtype=np.float32)
    cudnn = StandInCudnn()
    ops = HostCudnnConv(cudnn)
    z, _ = ops.conv2d(x, kernel, bias, rows, cols)
    _close(z, REFERENCE.conv2d(x, kernel, bias, rows, cols)[0])
    z64, patches = ops.conv2d(x.astype(np.float64), kernel.astype(np.float64), None, rows, cols)
    assert cudnn.calls == ["forward"] and z64.dtype == np.float64 and patches.ndim == 2


@pytest.mark.parametrize("failing", ["forward", "backward_filter", "backward_data"])
def test_a_failure_falls_back_to_im2col_with_one_warning(failing):
    x, kernel, dz, rows, cols = _case(CASES[1])
    ops = HostCudnnConv(StandInCudnn(fail=[failing]))
    expected = _run(REFERENCE, x, kernel, rows, cols, dz, with_out=False)
    with pytest.warns(RuntimeWarning, match="im2col") as record:
        first = _run(ops, x, kernel, rows, cols, dz)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    assert ops._cudnn is None
    for ours, theirs in zip(first, expected):
        _close(ours, theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = _run(ops, x, kernel, rows, cols, dz)
    for ours, theirs in zip(again, expected):
        _close(ours, theirs)


def test_required_cudnn_raises_instead_of_falling_back():
    x, kernel, _dz, rows, cols = _case(CASES[0])
    ops = HostCudnnConv(StandInCudnn(fail=["forward"]), required=True)
    with pytest.raises(RuntimeError, match="TENSORNET_CONV=cudnn"):
        ops.conv2d(x, kernel, None, rows, cols)


def test_cudnn_pads_symmetric_or_explicit():
    assert cudnn_pads_of(((3, 3), (1, 1), (1, 1), "same"), (7, 6)) == (False, (1, 1))
    assert cudnn_pads_of(((2, 2), (1, 1), (1, 1), "same"), (7, 6)) == (True, (0, 0))
    assert cudnn_pads_of(((3, 3), (2, 2), (1, 1), "valid"), (7, 6)) == (False, (0, 0))


def cudnn_pads_of(geometry, hw):
    window, strides, dilation, padding = geometry
    return cupy_cudnn.cudnn_pads(*conv_geometry((*hw, 1), window, strides, dilation, padding))


# ------------------------------------------------------------------ selection
def _loader(available):
    return lambda: (StandInCudnn(), None) if available else (None, "cupy.cudnn does not import (ImportError)")


@pytest.mark.parametrize("mode,available,expected", [
    ("auto", True, "cudnn"), ("auto", False, None), ("cudnn", True, "cudnn"),
    ("im2col", True, None), ("im2col", False, None)])
def test_selection(mode, available, expected):
    chosen = cupy_cudnn.select_cudnn(mode, loader=_loader(available))
    assert (chosen is not None) == (expected == "cudnn")


def test_required_but_missing_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"TENSORNET_CONV=cudnn, but cupy.cudnn does not import"):
        cupy_cudnn.select_cudnn("cudnn", loader=_loader(False))


def test_conv_mode_reads_the_environment(monkeypatch):
    monkeypatch.delenv("TENSORNET_CONV", raising=False)
    assert cupy_cudnn.conv_mode() == "auto"
    monkeypatch.setenv("TENSORNET_CONV", "IM2COL")
    assert cupy_cudnn.conv_mode() == "im2col"
    monkeypatch.setenv("TENSORNET_CONV", "winograd")
    with pytest.raises(ValueError, match="TENSORNET_CONV must be one of auto, cudnn, im2col"):
        cupy_cudnn.conv_mode()


def test_load_cudnn_without_cupy_gives_a_reason(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cupy", None)  # ``import cupy`` raises ImportError
    module, reason = cupy_cudnn.load_cudnn()
    assert module is None and reason.startswith("cupy.cudnn does not import (") and "Error" in reason


def test_load_cudnn_keeps_float32_convolutions_out_of_tf32_unless_the_user_chose(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cupy", None)
    environ = {}
    cupy_cudnn.load_cudnn(environ)
    assert environ == {"NVIDIA_TF32_OVERRIDE": "0"}
    environ = {"NVIDIA_TF32_OVERRIDE": "1"}
    cupy_cudnn.load_cudnn(environ)
    assert environ == {"NVIDIA_TF32_OVERRIDE": "1"}


# ------------------------------------------------------------------ in the CuPy backend
@pytest.mark.kernels_on_cpu
def test_the_cupy_backend_composes_the_cudnn_path():
    from tests.cuda_harness.backend import harness_backend

    gpu = harness_backend()
    assert gpu._cudnn is None  # the harness is not CuPy: no selection, im2col
    gpu._cudnn = cudnn = StandInCudnn()
    x, kernel, dz, rows, cols = _case(CASES[2])
    z, context = gpu.conv2d(gpu.asarray(x), gpu.asarray(kernel), None, rows, cols)
    dx, dk, _ = gpu.conv2d_backward(gpu.asarray(dz), context, x.shape, gpu.asarray(kernel), rows, cols)
    assert cudnn.calls == ["forward", "backward_filter", "backward_data"]
    assert not [name for name in gpu.launches if name.startswith("im2col<")]
    expected = _run(REFERENCE, x, kernel, rows, cols, dz, with_out=False)
    for ours, theirs in zip((z, dx, dk), (expected[0], expected[1], expected[2])):
        _close(gpu.to_numpy(ours), theirs)


# ------------------------------------------------------------------ on a device
@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])) + f"-k{c[1][0]}{c[1][1]}-{c[4]}")
def test_cudnn_matches_im2col_on_the_device(case, monkeypatch):
    usable, reason = cupy_status()
    if not usable:
        pytest.skip(reason)
    from tensornet.backend.cupy_backend import CupyBackend

    monkeypatch.setenv("TENSORNET_CONV", "im2col")
    im2col = CupyBackend()
    monkeypatch.setenv("TENSORNET_CONV", "cudnn")
    try:
        cudnn = CupyBackend()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    x, kernel, dz, rows, cols = _case(case)
    results = []
    for ops in (im2col, cudnn):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            z, context = ops.conv2d(ops.asarray(x), ops.asarray(kernel), None, rows, cols)
            dx, dk, _ = ops.conv2d_backward(ops.asarray(dz), context, x.shape, ops.asarray(kernel), rows, cols)
        results.append((context.ndim, [ops.to_numpy(a) for a in (z, dx, dk)]))
    (im2col_ndim, theirs), (cudnn_ndim, ours) = results
    assert im2col_ndim == 2 and cudnn_ndim == 4  # each ran its own path
    for a, b in zip(ours, theirs):  # float32 on both paths (load_cudnn sets NVIDIA_TF32_OVERRIDE=0)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _small_cnn(backend):
    from tensornet.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from tensornet.models import Sequential
    from tensornet.optimizers import SGD

    model = Sequential([Conv2D(4, 2, padding="same", activation="relu", input_shape=(9, 8, 2)), MaxPooling2D(),
                        Conv2D(5, 3, strides=2, padding="same", activation="relu"), Flatten(),
                        Dense(3, activation="softmax")], seed=5)
    model.compile(optimizer=SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend=backend, jit_compile=False)
    return model


@pytest.mark.kernels_on_cpu
def test_fit_of_a_cnn_through_cudnn_matches_the_numpy_backend():
    from tests.cuda_harness.backend import harness_backend

    rng = np.random.default_rng(3)
    x, y = rng.random((40, 9, 8, 2), dtype=np.float32), rng.integers(0, 3, 40)
    gpu = harness_backend()
    gpu._cudnn = cudnn = StandInCudnn()
    on_harness, reference = _small_cnn(gpu), _small_cnn("numpy")
    history = on_harness.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    expected = reference.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    steps = 2 * 3
    # two convolutions forward and filter-backward each step; dx for the second one only
    assert cudnn.calls.count("forward") >= 2 * steps and cudnn.calls.count("backward_filter") == 2 * steps
    assert cudnn.calls.count("backward_data") == steps
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=2e-5)
    for got, want in zip(on_harness.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)
