"""Conv2D forward and backward through cuDNN (``cupy.cudnn``) on the CuPy backend, channels last.

cuDNN computes, with NHWC images and NHWC filters W[f, u, v, ci] = kernel[u, v, ci, f]:

    y[b, i, j, f]    = sum_{u, v, ci} p[b, i s_h + u d_h, j s_w + v d_w, ci] W[f, u, v, ci]
    dW[f, u, v, ci]  = sum_{b, i, j} p[b, i s_h + u d_h, j s_w + v d_w, ci] dy[b, i, j, f]
    dp[b, y, x, ci]  = sum over the (i, j, u, v) reading p[b, y, x, ci] of dy[b, i, j, f] W[f, u, v, ci]

with p the input zero-padded by ``pad`` on both sides of each axis. cuDNN's padding is
symmetric; TensorFlow's "same" puts the odd extra row / column at the bottom / right, so when
``pad_before != pad_after`` on an axis the image is padded explicitly (p written into a buffer)
and cuDNN runs with pad 0; dx is then the interior of dp.

Selection (:func:`select_cudnn`, environment variable ``TENSORNET_CONV``): ``auto`` (default)
uses cuDNN where ``cupy.cudnn`` imports, ``cudnn`` requires it (a clear error when it does not
import), ``im2col`` always runs the im2col / col2im kernels plus cuBLAS
(:class:`.cupy_conv.CupyConvOps`). Only float32, C-contiguous arrays of the backend take the
cuDNN path. Under ``auto``, a cuDNN call that raises is reported in one warning and the
backend runs im2col from then on. ``TENSORNET_CUDNN_AUTOTUNE=1`` passes ``auto_tune=True``
(cuDNN times its algorithms on the first call of each shape); the backward passes ask for
deterministic algorithms.

Imports no CuPy at import time: :func:`load_cudnn` imports ``cupy.cudnn`` when asked, and the
mixin works on whatever module-like object ``self._cudnn`` holds (the CPU tests give it a NumPy
stand-in, ``tests/test_backend_cupy_conv_cudnn.py``)."""
from __future__ import annotations

import os
import warnings

import numpy

MODES = ("auto", "cudnn", "im2col")


class CudnnModule:
    """The three ``cupy.cudnn`` convolution functions and the NHWC layout constant."""

    def __init__(self, cudnn, nhwc):
        self.convolution_forward = cudnn.convolution_forward
        self.convolution_backward_data = cudnn.convolution_backward_data
        self.convolution_backward_filter = cudnn.convolution_backward_filter
        self.nhwc = nhwc


#: cuDNN's default math mode lets Ampere and later GPUs compute float32 convolutions in TF32
#: (10-bit mantissa, about 1e-3 relative). Unless the user chose otherwise, :func:`load_cudnn`
#: sets ``NVIDIA_TF32_OVERRIDE=0`` before cuDNN loads, so float32 stays float32.
TF32_ENV = "NVIDIA_TF32_OVERRIDE"


def load_cudnn(environ=os.environ):
    """``(CudnnModule, None)`` when ``cupy.cudnn`` imports, else ``(None, reason)``; sets
    ``NVIDIA_TF32_OVERRIDE=0`` first where the environment does not set it (:data:`TF32_ENV`)."""
    environ.setdefault(TF32_ENV, "0")
    try:
        import cupy.cudnn as cudnn
        from cupy.cuda import cudnn as libcudnn
        return CudnnModule(cudnn, libcudnn.CUDNN_TENSOR_NHWC), None
    except Exception as exc:  # ImportError, or the library failing to load
        return None, f"cupy.cudnn does not import ({type(exc).__name__}: {exc})"


def conv_mode(environ=os.environ) -> str:
    """``TENSORNET_CONV`` (auto | cudnn | im2col; auto when unset)."""
    mode = environ.get("TENSORNET_CONV", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"TENSORNET_CONV must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def select_cudnn(mode=None, loader=load_cudnn):
    """The cuDNN module the backend uses under ``mode`` (default :func:`conv_mode`), or None for
    im2col: ``im2col`` -> None; ``auto`` -> the loaded module or None; ``cudnn`` -> the loaded
    module, RuntimeError naming the reason when it does not load."""
    mode = conv_mode() if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"TENSORNET_CONV must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "im2col":
        return None
    module, reason = loader()
    if module is None and mode == "cudnn":
        raise RuntimeError(f"TENSORNET_CONV=cudnn, but {reason}; set TENSORNET_CONV=im2col or auto")
    return module


def cudnn_pads(rows, cols):
    """``(explicit, pad)``: cuDNN's symmetric ``pad`` (pad_h, pad_w), or ``explicit`` True and
    pad (0, 0) when an axis pads more after than before (the image is then padded first)."""
    if rows[3] == rows[4] and cols[3] == cols[4]:
        return False, (int(rows[3]), int(cols[3]))
    return True, (0, 0)


class CupyCudnnConvOps:
    """``conv2d`` / ``conv2d_backward`` through ``self._cudnn``; everything else, and arrays
    cuDNN does not take, go to the next class (the im2col kernels)."""

    _cudnn = None  # a CudnnModule, or None: im2col
    _cudnn_required = False  # TENSORNET_CONV=cudnn: a failing call raises instead of falling back

    def __init__(self):
        super().__init__()
        if getattr(self.xp, "__name__", None) == "cupy":  # the CuPy backend itself, not a host harness
            self._select_cudnn()

    def _select_cudnn(self):
        """Sets ``_cudnn`` from ``TENSORNET_CONV``."""
        mode = conv_mode()
        self._cudnn, self._cudnn_required = select_cudnn(mode), mode == "cudnn"

    def _cudnn_takes(self, *arrays):
        if self._cudnn is None:
            return False
        return all(isinstance(a, self.xp.ndarray) and a.dtype == numpy.float32 and a.flags.c_contiguous
                   for a in arrays)

    def _cudnn_failed(self, exc, where):
        """Under ``auto``: one warning, then im2col for the rest of this backend's life."""
        if self._cudnn_required:
            raise RuntimeError(f"{where}: cuDNN failed with TENSORNET_CONV=cudnn: {exc}") from exc
        warnings.warn(f"{where}: cuDNN failed ({type(exc).__name__}: {exc}); the CuPy backend runs "
                      "its im2col kernels for convolutions from here on", RuntimeWarning, stacklevel=3)
        self._cudnn = None

    def _cudnn_args(self, rows, cols, backward=False):
        _explicit, pad = cudnn_pads(rows, cols)
        args = (pad, (int(rows[1]), int(cols[1])), (int(rows[2]), int(cols[2])), 1)
        flags = {"auto_tune": os.environ.get("TENSORNET_CUDNN_AUTOTUNE", "") == "1", "tensor_core": "never",
                 "d_layout": self._cudnn.nhwc, "w_layout": self._cudnn.nhwc}
        if backward:
            flags["deterministic"] = True
        return args, flags

    def _cudnn_input(self, x, rows, cols, buffer):
        """The image cuDNN reads: ``x``, or ``x`` inside a zero border (rows[3], rows[4]) x
        (cols[3], cols[4]) written into ``buffer`` when it is large enough, else a fresh array."""
        if not cudnn_pads(rows, cols)[0]:
            return x
        n, h, w, c = x.shape
        shape = (n, h + rows[3] + rows[4], w + cols[3] + cols[4], c)
        size = shape[0] * shape[1] * shape[2] * shape[3]
        if buffer is not None and buffer.dtype == x.dtype and buffer.flags.c_contiguous and buffer.size >= size:
            p = buffer.reshape(-1)[:size].reshape(shape)
        else:
            p = self.xp.empty(shape, dtype=x.dtype)
        p[...] = 0
        p[:, rows[3]:rows[3] + h, cols[3]:cols[3] + w, :] = x
        return p

    def conv2d(self, x, kernel, bias, rows, cols, out=None, cols_out=None):
        """z = conv(x, kernel) (+ bias) through cuDNN. Returns ``(z, context)``; the context is
        the (padded) image, which :meth:`conv2d_backward` takes in place of im2col's patches."""
        if x.ndim != 4 or not self._cudnn_takes(x, kernel):
            return super().conv2d(x, kernel, bias, rows, cols, out=out, cols_out=cols_out)
        n, f = x.shape[0], kernel.shape[3]
        shape = (n, rows[5], cols[5], f)
        z = out if (out is not None and self._cudnn_takes(out) and tuple(out.shape) == shape) else None
        z = self.xp.empty(shape, dtype=x.dtype) if z is None else z
        try:
            p = self._cudnn_input(x, rows, cols, cols_out)
            w = self.xp.ascontiguousarray(kernel.transpose(3, 0, 1, 2))
            args, flags = self._cudnn_args(rows, cols)
            self._cudnn.convolution_forward(p, w, None, z, *args, **flags)
        except Exception as exc:
            self._cudnn_failed(exc, "conv2d")
            return super().conv2d(x, kernel, bias, rows, cols, out=out, cols_out=cols_out)
        if out is not None and z is not out:
            out[...] = z
            z = out
        if bias is not None:
            self.bias_add(z.reshape(-1, f), bias, out=z.reshape(-1, f))
        return z, p

    def conv2d_backward(self, dz, patches, x_shape, kernel, rows, cols, dx_out=None, dkernel_out=None,
                        dbias_out=None, need_dx=True):
        """Gradients of :meth:`conv2d` (dK, dbias = sum_rows(dz), dx) from its context: cuDNN's
        backward filter and data passes; a 2-D ``patches`` (im2col's) goes to the next class."""
        if patches.ndim != 4:
            return super().conv2d_backward(dz, patches, x_shape, kernel, rows, cols, dx_out=dx_out,
                                           dkernel_out=dkernel_out, dbias_out=dbias_out, need_dx=need_dx)
        f = kernel.shape[3]
        explicit = cudnn_pads(rows, cols)[0]
        dy = self.xp.ascontiguousarray(dz.reshape(x_shape[0], rows[5], cols[5], f))
        dbias = None if dbias_out is None else self.sum_rows(dy.reshape(-1, f), out=dbias_out)
        if self._cudnn_takes(patches, kernel, dy):
            try:
                return self._cudnn_backward(dy, patches, x_shape, kernel, rows, cols, dx_out, dkernel_out,
                                            need_dx, explicit) + (dbias,)
            except Exception as exc:
                self._cudnn_failed(exc, "conv2d_backward")
        return self._context_backward(dy, patches, x_shape, kernel, rows, cols, dx_out, dkernel_out,
                                      need_dx, explicit) + (dbias,)

    def _cudnn_backward(self, dy, p, x_shape, kernel, rows, cols, dx_out, dkernel_out, need_dx, explicit):
        xp = self.xp
        args, flags = self._cudnn_args(rows, cols, backward=True)
        kh, kw, c, f = kernel.shape
        dw = xp.empty((f, kh, kw, c), dtype=kernel.dtype)
        self._cudnn.convolution_backward_filter(p, dy, dw, *args, **flags)
        dkernel = dkernel_out if dkernel_out is not None else xp.empty(kernel.shape, dtype=kernel.dtype)
        dkernel[...] = dw.transpose(1, 2, 3, 0)
        if not need_dx:
            return None, dkernel
        w = xp.ascontiguousarray(kernel.transpose(3, 0, 1, 2))
        if explicit:
            dp = self.scratch(("cudnn_dx_pad", tuple(p.shape)), tuple(p.shape), dy.dtype)
        else:
            usable = dx_out is not None and self._cudnn_takes(dx_out) and tuple(dx_out.shape) == tuple(x_shape)
            dp = dx_out if usable else xp.empty(tuple(x_shape), dtype=dy.dtype)
        self._cudnn.convolution_backward_data(w, dy, None, dp, *args, **flags)
        return self._crop(dp, x_shape, rows, cols, dx_out), dkernel

    def _crop(self, dp, x_shape, rows, cols, dx_out):
        """dx: the interior of ``dp`` (``dp`` itself when it has the image's shape)."""
        if tuple(dp.shape) == tuple(x_shape):
            if dx_out is None or dp is dx_out:
                return dp
            dx_out[...] = dp
            return dx_out
        return self._interior(dp, x_shape, rows, cols, dx_out)

    def _context_backward(self, dy, p, x_shape, kernel, rows, cols, dx_out, dkernel_out, need_dx, explicit):
        """The im2col gradients from a cuDNN context (after a failure): the patches of ``p``
        with the padding cuDNN was given, then the im2col backward pass and the crop."""
        prows, pcols = rows, cols
        if explicit:
            prows, pcols = rows[:3] + (0, 0) + rows[5:], cols[:3] + (0, 0) + cols[5:]
        patches = self.im2col(p, prows, pcols)
        dp, dkernel, _ = super().conv2d_backward(dy, patches, tuple(p.shape), kernel, prows, pcols,
                                                 dkernel_out=dkernel_out, need_dx=need_dx)
        if not need_dx:
            return None, dkernel
        return self._crop(dp, x_shape, rows, cols, dx_out), dkernel
