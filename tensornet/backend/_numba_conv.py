"""The Numba versions of :class:`~tensornet.backend.conv_ops.ConvOps`' im2col, col2im, max and
average pooling, for :class:`~tensornet.backend.numpy_backend.NumpyBackend` (:mod:`.numpy_conv`).

Each kernel is named after the backend method it implements and computes exactly its
reference's equations (the docstrings of :mod:`.conv_ops`); tests compare them on random inputs
of awkward sizes (``tests/test_backend_numpy_conv.py``). Why: the reference copies one window
offset at a time with NumPy (one single-threaded pass over the batch per offset, the padding
written first); here one pass reads each window straight from the unpadded image (padding is
a bounds test hoisted out of the innermost loop, which runs over contiguous memory), split
over the cores by image row or by image (``prange``), so the step's time goes to the matrix
products. Indices are unsigned (``_U``) where they are known non-negative, so Numba adds no
negative-index wraparound test and the innermost copies and adds vectorise. col2im adds the
rows of dcols in order into each image (read front to back, the image's gradient staying in
cache); the pooling backward passes gather: each input pixel reads the windows that cover it,
in the reference's (u, v) order, and is written once (no zeroing pass, and the reference's
sums bit for bit).

Each exists twice, as in :mod:`._numba_kernels` (``[0]`` parallel, ``[1]`` serial), cached on
disk. ``geometry`` arguments are the reference's: for each axis (kernel, stride, dilation,
pad_before, out_size) passed as plain ints. Arrays are C-contiguous (:mod:`.numpy_conv` checks).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._numba_kernels import _twin

__all__ = ["im2col", "col2im", "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]


@numba.njit(nogil=True, inline="always")
def _inside(size, kernel, stride, dilation, before, out):
    """[lo, hi): the output positions whose whole window lies inside an axis of ``size`` pixels
    (o s - before >= 0 and o s + (kernel - 1) d - before < size)."""
    lo = min((before + stride - 1) // stride, out)
    last = size - 1 - (kernel - 1) * dilation + before
    hi = min(last // stride + 1, out) if last >= 0 else 0
    return lo, max(hi, lo)


_U = numba.uint64  # unsigned indices: Numba adds no negative-index wraparound test to them


@numba.njit(nogil=True, inline="always")
def _run(shift, stride, size, out):
    """[lo, hi): the output positions o with o stride + shift inside [0, size)."""
    lo = min(max(0, (stride - 1 - shift) // stride), out)
    hi = min(out, (size - 1 - shift) // stride + 1) if size - 1 - shift >= 0 else lo
    return lo, max(hi, lo)


@numba.njit(nogil=True, inline="always")
def _source(o, k, stride, dilation, before, size):
    """The input position that output ``o`` reads at window offset ``k`` along one axis
    (o s + k d - before), or -1 in the padding."""
    p = o * stride + k * dilation - before
    return p if 0 <= p < size else -1


@numba.njit(nogil=True, inline="always")
def _reader(p, k, stride, dilation, before, out):
    """The output position o whose window reads input ``p`` at offset ``k`` (o s + k d - before
    = p), or -1 where none does."""
    t = p + before - k * dilation
    if t < 0 or t % stride:
        return -1
    o = t // stride
    return o if o < out else -1


@numba.njit(nogil=True)
def _readers(size, kernel, stride, before, out):
    """table[p, k] = :func:`_reader` (p, k) along one axis (no dilation): the window reading
    input ``p`` at offset ``k``, or -1."""
    table = np.empty((size, kernel), dtype=np.int64)
    for p in range(size):
        for k in range(kernel):
            table[p, k] = _reader(p, k, stride, 1, before, out)
    return table


@numba.njit(nogil=True)
def _first_reader(table):
    """first[p] = the first offset k with table[p, k] >= 0 (a window reads p there), or -1."""
    first = np.full(table.shape[0], -1, dtype=np.int64)
    for p in range(table.shape[0]):
        for k in range(table.shape[1]):
            if table[p, k] >= 0:
                first[p] = k
                break
    return first


def _im2col(x, out, kh, sh, dh, top, oh, kw, sw, dw, left, ow):
    """out[(b, i, j), (u, v, ci)] = x[b, i sh + u dh - top, j sw + v dw - left, ci], 0 outside.

    Row (u) of a patch whose window lies inside the image along the width and dw = 1 is one
    contiguous run of kw c values in x; with c = 1 each offset (u, v) instead copies the run of
    positions j that read inside the row (a stride kh kw apart in ``out``). Indices are
    unsigned so the copies vectorise (no negative-index wraparound)."""
    n, h, w, c = x.shape
    if c == 1:  # per offset (u, v): the positions j reading inside the row in one run
        xf, of = x.reshape(-1), out.reshape(-1)
        zero = x.dtype.type(0)
        width, step = _U(kh * kw), _U(sw)
        for row in prange(n * oh):
            b = row // oh
            i = row - b * oh
            first = _U(row * ow) * width
            for u in range(kh):
                src_i = i * sh + u * dh - top
                inside = 0 <= src_i < h
                for v in range(kw):
                    o = first + _U(u * kw + v)
                    shift = v * dw - left
                    lo, hi = _run(shift, sw, w, ow) if inside else (0, 0)
                    start = _U((b * h + src_i) * w + lo * sw + shift) if hi > lo else _U(0)
                    for j in range(_U(lo)):
                        of[o + j * width] = zero
                    o += _U(lo) * width
                    for k in range(_U(hi - lo)):
                        of[o + k * width] = xf[start + k * step]
                    for j in range(_U(hi), _U(ow)):
                        of[first + _U(u * kw + v) + j * width] = zero
        return
    xf, of = x.reshape(-1), out.reshape(-1)
    zero = x.dtype.type(0)
    block = _U(kw * c)
    width = _U(kh * kw * c)
    j_lo, j_hi = _inside(w, kw, sw, dw, left, ow)
    for row in prange(n * oh):
        b = row // oh
        i = row - b * oh
        for j in range(ow):
            r = _U(row * ow + j) * width
            whole = j_lo <= j < j_hi and dw == 1
            for u in range(kh):
                src_i = i * sh + u * dh - top
                o = r + _U(u) * block
                if src_i < 0 or src_i >= h:
                    for t in range(block):
                        of[o + t] = zero
                elif whole:
                    s = _U(((b * h + src_i) * w + j * sw - left) * c)
                    for t in range(block):
                        of[o + t] = xf[s + t]
                else:
                    for v in range(kw):
                        src_j = j * sw + v * dw - left
                        ov = o + _U(v * c)
                        if 0 <= src_j < w:
                            s = _U(((b * h + src_i) * w + src_j) * c)
                            for ci in range(_U(c)):
                                of[ov + ci] = xf[s + ci]
                        else:
                            for ci in range(_U(c)):
                                of[ov + ci] = zero


def _col2im(dcols, dx, kh, sh, dh, top, oh, kw, sw, dw, left, ow):
    """dx[b, p, q, ci] = sum of dcols[(b, i, j), (u, v, ci)] over the (i, j, u, v) reading
    pixel (p, q): per image, dx zeroed, then the rows of dcols added in order (a window row u
    inside the image along the width with dw = 1 as one contiguous run of kw c values)."""
    n, h, w, c = dx.shape
    df, xf = dcols.reshape(-1), dx.reshape(-1)
    zero = dx.dtype.type(0)
    block = _U(kw * c)
    width = _U(kh * kw * c)
    j_lo, j_hi = _inside(w, kw, sw, dw, left, ow)
    for b in prange(n):
        image = _U(b * h * w * c)
        for t in range(_U(h * w * c)):
            xf[image + t] = zero
        for i in range(oh):
            for j in range(ow):
                r = _U((b * oh + i) * ow + j) * width
                whole = j_lo <= j < j_hi and dw == 1
                for u in range(kh):
                    dst_i = i * sh + u * dh - top
                    if dst_i < 0 or dst_i >= h:
                        continue
                    o = r + _U(u) * block
                    if whole:
                        d = _U(((b * h + dst_i) * w + j * sw - left) * c)
                        for t in range(block):
                            xf[d + t] += df[o + t]
                        continue
                    for v in range(kw):
                        dst_j = j * sw + v * dw - left
                        if 0 <= dst_j < w:
                            d = _U(((b * h + dst_i) * w + dst_j) * c)
                            ov = o + _U(v * c)
                            for ci in range(_U(c)):
                                xf[d + ci] += df[ov + ci]


def _max_pool2d(x, y, argmax, kh, sh, top, oh, kw, sw, left, ow):
    """y = the first maximum of each window (padding reads -inf), argmax = its u kw + v."""
    n, h, w, c = x.shape
    xf, yf, af = x.reshape(-1), y.reshape(-1), argmax.reshape(-1)
    lowest = x.dtype.type(-np.inf)
    for row in prange(n * oh):
        b = row // oh
        i = row - b * oh
        for j in range(ow):
            o = _U((row * ow + j) * c)
            for u in range(kh):
                src_i = _source(i, u, sh, 1, top, h)
                for v in range(kw):
                    k = np.int32(u * kw + v)  # argmax's own type: the select vectorises
                    src_j = _source(j, v, sw, 1, left, w)
                    if src_i < 0 or src_j < 0:
                        if k == 0:
                            for ch in range(_U(c)):
                                yf[o + ch] = lowest
                                af[o + ch] = 0
                        continue
                    s = _U(((b * h + src_i) * w + src_j) * c)
                    if k == 0:
                        for ch in range(_U(c)):
                            yf[o + ch] = xf[s + ch]
                            af[o + ch] = 0
                    else:
                        for ch in range(_U(c)):
                            value = xf[s + ch]
                            better = value > yf[o + ch]
                            yf[o + ch] = value if better else yf[o + ch]
                            af[o + ch] = k if better else af[o + ch]


def _max_pool2d_backward(dy, argmax, dx, kh, sh, top, oh, kw, sw, left, ow):
    """dx[b, p, q, ch] = sum, over the windows (i, j) covering pixel (p, q) in the reference's
    offset order, of dy[b, i, j, ch] where that window's first maximum is (p, q)."""
    n, h, w, c = dx.shape
    yf, af, xf = dy.reshape(-1), argmax.reshape(-1), dx.reshape(-1)
    zero = dx.dtype.type(0)
    rows, cols = _readers(h, kh, sh, top, oh), _readers(w, kw, sw, left, ow)
    if kh <= sh and kw <= sw:  # windows apart: one window at most per pixel, one store
        row_u, col_v = _first_reader(rows), _first_reader(cols)
        for b in prange(n):
            for p in range(h):
                u = row_u[p]
                for q in range(w):
                    o = _U(((b * h + p) * w + q) * c)
                    v = col_v[q]
                    if u < 0 or v < 0:
                        for ch in range(_U(c)):
                            xf[o + ch] = zero
                        continue
                    k = u * kw + v
                    s = _U(((b * oh + rows[p, u]) * ow + cols[q, v]) * c)
                    for ch in range(_U(c)):
                        xf[o + ch] = zero + (yf[s + ch] if af[s + ch] == k else zero)
        return
    for b in prange(n):
        for p in range(h):
            for q in range(w):
                o = _U(((b * h + p) * w + q) * c)
                for ch in range(_U(c)):
                    xf[o + ch] = zero
                for u in range(kh):
                    i = rows[p, u]
                    if i < 0:
                        continue
                    for v in range(kw):
                        j = cols[q, v]
                        if j >= 0:
                            k = u * kw + v
                            s = _U(((b * oh + i) * ow + j) * c)
                            for ch in range(_U(c)):
                                xf[o + ch] += yf[s + ch] if af[s + ch] == k else zero


def _count(o, kernel, stride, before, size):
    """How many entries of window ``o`` along one axis lie inside the image (the reference's
    min(o s + k, before + size) - max(o s, before))."""
    return min(o * stride + kernel, before + size) - max(o * stride, before)


_count = numba.njit(nogil=True, inline="always")(_count)


def _avg_pool2d(x, y, kh, sh, top, oh, kw, sw, left, ow):
    """y[b, i, j, ch] = (the window's entries added in (u, v) order, padding 0) / count[i, j]."""
    n, h, w, c = x.shape
    xf, yf = x.reshape(-1), y.reshape(-1)
    zero = x.dtype.type(0)
    for row in prange(n * oh):
        b = row // oh
        i = row - b * oh
        rows_in = _count(i, kh, sh, top, h)
        for j in range(ow):
            o = _U((row * ow + j) * c)
            count = x.dtype.type(rows_in * _count(j, kw, sw, left, w))
            for u in range(kh):
                src_i = _source(i, u, sh, 1, top, h)
                for v in range(kw):
                    k = u * kw + v
                    src_j = _source(j, v, sw, 1, left, w)
                    if src_i < 0 or src_j < 0:
                        if k == 0:
                            for ch in range(_U(c)):
                                yf[o + ch] = zero
                        continue
                    s = _U(((b * h + src_i) * w + src_j) * c)
                    if k == 0:
                        for ch in range(_U(c)):
                            yf[o + ch] = xf[s + ch]
                    else:
                        for ch in range(_U(c)):
                            yf[o + ch] += xf[s + ch]
            for ch in range(_U(c)):
                yf[o + ch] /= count


def _avg_pool2d_backward(dy, dx, kh, sh, top, oh, kw, sw, left, ow):
    """dx[b, p, q, ch] = sum, over the windows (i, j) covering pixel (p, q) in offset order, of
    dy[b, i, j, ch] / count[i, j]."""
    n, h, w, c = dx.shape
    yf, xf = dy.reshape(-1), dx.reshape(-1)
    zero = dx.dtype.type(0)
    rows, cols = _readers(h, kh, sh, top, oh), _readers(w, kw, sw, left, ow)
    for b in prange(n):
        for p in range(h):
            for q in range(w):
                o = _U(((b * h + p) * w + q) * c)
                for ch in range(_U(c)):
                    xf[o + ch] = zero
                for u in range(kh):
                    i = rows[p, u]
                    if i < 0:
                        continue
                    rows_in = _count(i, kh, sh, top, h)
                    for v in range(kw):
                        j = cols[q, v]
                        if j >= 0:
                            count = dx.dtype.type(rows_in * _count(j, kw, sw, left, w))
                            s = _U(((b * oh + i) * ow + j) * c)
                            for ch in range(_U(c)):
                                xf[o + ch] += yf[s + ch] / count


im2col = _twin(_im2col)
col2im = _twin(_col2im)
max_pool2d = _twin(_max_pool2d)
max_pool2d_backward = _twin(_max_pool2d_backward)
avg_pool2d = _twin(_avg_pool2d, error_model="numpy")
avg_pool2d_backward = _twin(_avg_pool2d_backward, error_model="numpy")
