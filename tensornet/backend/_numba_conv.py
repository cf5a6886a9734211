"""The Numba versions of :class:`~tensornet.backend.conv_ops.ConvOps`' im2col, col2im and max
pooling, for :class:`~tensornet.backend.numpy_backend.NumpyBackend` (:mod:`.numpy_conv`).

Each kernel is named after the backend method it implements and computes exactly its
reference's equations (the docstrings of :mod:`.conv_ops`); tests compare them on random inputs
of awkward sizes (``tests/test_backend_numpy_conv.py``). Why: the reference copies one window
offset at a time with NumPy (one single-threaded pass over the batch per offset, the padding
written first); here one pass reads each window straight from the unpadded image (padding is
a bounds test), split over the cores by image row (``prange``), so the step's time goes to the
matrix products.

Each exists twice, as in :mod:`._numba_kernels` (``[0]`` parallel, ``[1]`` serial), cached on
disk. ``geometry`` arguments are the reference's: for each axis (kernel, stride, dilation,
pad_before, out_size) passed as plain ints.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._numba_kernels import _twin

__all__ = ["im2col", "col2im", "max_pool2d", "max_pool2d_backward"]


def _im2col(x, out, kh, sh, dh, top, oh, kw, sw, dw, left, ow):
    """out[(b, i, j), (u, v, ci)] = x[b, i sh + u dh - top, j sw + v dw - left, ci], 0 outside."""
    n, h, w, c = x.shape
    zero = x.dtype.type(0)
    for row in prange(n * oh):
        b, i = row // oh, row % oh
        for j in range(ow):
            r = (b * oh + i) * ow + j
            for u in range(kh):
                src_i = i * sh + u * dh - top
                for v in range(kw):
                    src_j = j * sw + v * dw - left
                    base = (u * kw + v) * c
                    if 0 <= src_i < h and 0 <= src_j < w:
                        for ci in range(c):
                            out[r, base + ci] = x[b, src_i, src_j, ci]
                    else:
                        for ci in range(c):
                            out[r, base + ci] = zero


def _col2im(dcols, dx, kh, sh, dh, top, oh, kw, sw, dw, left, ow):
    """dx[b, p, q, ci] = sum of dcols[(b, i, j), (u, v, ci)] over the (i, j, u, v) reading it."""
    n, h, w, c = dx.shape
    for b in prange(n):
        dx[b] = 0
        for i in range(oh):
            for u in range(kh):
                dst_i = i * sh + u * dh - top
                if dst_i < 0 or dst_i >= h:
                    continue
                for j in range(ow):
                    r = (b * oh + i) * ow + j
                    for v in range(kw):
                        dst_j = j * sw + v * dw - left
                        if 0 <= dst_j < w:
                            base = (u * kw + v) * c
                            for ci in range(c):
                                dx[b, dst_i, dst_j, ci] += dcols[r, base + ci]


def _max_pool2d(x, y, argmax, kh, sh, top, oh, kw, sw, left, ow):
    """y = the first maximum of each window (padding reads -inf), argmax = its u kw + v."""
    n, h, w, c = x.shape
    lowest = x.dtype.type(-np.inf)
    for row in prange(n * oh):
        b, i = row // oh, row % oh
        for j in range(ow):
            for k in range(kh * kw):
                src_i, src_j = i * sh + k // kw - top, j * sw + k % kw - left
                inside = 0 <= src_i < h and 0 <= src_j < w
                for ch in range(c):
                    value = x[b, src_i, src_j, ch] if inside else lowest
                    if k == 0 or value > y[b, i, j, ch]:
                        y[b, i, j, ch] = value
                        argmax[b, i, j, ch] = k


def _max_pool2d_backward(dy, argmax, dx, kh, sh, top, oh, kw, sw, left, ow):
    """dx: each dy[b, i, j, ch] added to its window's first maximum (padding dropped)."""
    n, h, w, c = dx.shape
    for b in prange(n):
        dx[b] = 0
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    k = argmax[b, i, j, ch]
                    dst_i, dst_j = i * sh + k // kw - top, j * sw + k % kw - left
                    if 0 <= dst_i < h and 0 <= dst_j < w:
                        dx[b, dst_i, dst_j, ch] += dy[b, i, j, ch]


im2col = _twin(_im2col)
col2im = _twin(_col2im)
max_pool2d = _twin(_max_pool2d)
max_pool2d_backward = _twin(_max_pool2d_backward)
