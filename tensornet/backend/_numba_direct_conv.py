"""Direct convolution for windows with few taps (kh kw c small), as Numba kernels, for
:class:`~tensornet.backend.numpy_conv.NumpyConvOps`' ``conv2d`` / ``conv2d_backward``.

The equations are :mod:`.conv_ops`' with the im2col matrix never built (x the unpadded image,
padding a bounds test, s stride, d dilation, top / left the padding before):

    z[b, i, j, q] = sum_{u, v, ci} x[b, i s_h + u d_h - top, j s_w + v d_w - left, ci] K[u, v, ci, q]
    dK[u, v, ci, q] = sum_{b, i, j} x[b, i s_h + u d_h - top, j s_w + v d_w - left, ci] dz[b, i, j, q]
    dbias[q] = sum_{b, i, j} dz[b, i, j, q]

Why: with kh kw c = 9 (a 3x3 window over one channel) the im2col path writes and reads a
(n oh ow, 9) matrix and multiplies it in a GEMM whose inner dimension is 9, and its dK product
has an inner dimension of n oh ow: both are memory-bound passes a direct loop replaces by one
read of x (and dz). Rows (b, i) are split over the cores (``prange``); the backward's rows go in
``parts`` blocks, each summed into its own partial dK / dbias, the partials added in block order
(float sums in a different order from the reference's GEMM: equal to rounding).

Each exists twice, as in :mod:`._numba_kernels` (``[0]`` parallel, ``[1]`` serial), cached on
disk. Geometry arguments per axis: (kernel, stride, dilation, pad_before, out_size). Arrays are
C-contiguous and of one float dtype (:mod:`.numpy_conv` checks).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._numba_conv import _U, _run  # unsigned indices; the output run a window offset reads
from ._numba_conv_bias import add_blocks  # the blocks' partial sums, added in order
from ._numba_kernels import _twin

__all__ = ["FILTERS_INNER", "GRADS_POSITIONS_OUTER", "direct_conv2d", "direct_conv2d_grads"]


#: From this many filters the forward's innermost loop runs over the filters q (one vector of
#: K's row per input value); below it, over the output positions j of a run.
FILTERS_INNER = 8


def _direct_conv2d(x, kernel, out, kh, sh, dh, top, oh, kw, sw, dw, left, ow):
    """out[b, i, j, q] = sum_{u, v, ci} x[b, i sh + u dh - top, j sw + v dw - left, ci] K[u, v, ci, q]
    (terms outside the image are 0), the terms added in (u, v, ci) order. Per output row (b, i)
    the sums build in a buffer, one tap (u, v, ci) at a time over the run of positions j that
    read inside the image. With at least :data:`FILTERS_INNER` filters the buffer is (ow, f), the
    row of ``out`` itself, and each x value multiplies K's contiguous row of f filters (the
    multiply-adds vectorise over q, x read once per tap); with fewer it is (f, ow), each filter's
    multiply-adds vectorise over the run of j, and the buffer goes to ``out`` transposed."""
    n, h, w, c = x.shape
    f = kernel.shape[3]
    xf, kf, of = x.reshape(-1), kernel.reshape(-1), out.reshape(-1)
    step, width, uf = _U(sw * c), _U(ow), _U(f)
    filters_inner = f >= FILTERS_INNER
    for row in prange(n * oh):
        b = row // oh
        i = row - b * oh
        acc = np.zeros(f * ow, dtype=out.dtype)
        for u in range(kh):
            si = i * sh + u * dh - top
            if si < 0 or si >= h:
                continue
            for v in range(kw):
                shift = v * dw - left
                lo, hi = _run(shift, sw, w, ow)
                if hi <= lo:
                    continue
                for ci in range(c):
                    start = _U(((b * h + si) * w + lo * sw + shift) * c + ci)
                    tap = _U(((u * kw + v) * c + ci) * f)
                    if filters_inner:
                        for k in range(_U(hi - lo)):
                            xv = xf[start + k * step]
                            a = (_U(lo) + k) * uf
                            for q in range(uf):
                                acc[a + q] += xv * kf[tap + q]
                    else:
                        for q in range(uf):
                            kv = kf[tap + q]
                            a = q * width + _U(lo)
                            for k in range(_U(hi - lo)):
                                acc[a + k] += kv * xf[start + k * step]
        ob = _U(row * ow * f)
        if filters_inner:
            for e in range(width * uf):
                of[ob + e] = acc[e]
        else:
            for j in range(width):
                for q in range(uf):
                    of[ob + j * uf + q] = acc[q * width + j]


direct_conv2d = _twin(_direct_conv2d)


#: From this many (input channel, filter) pairs c f the gradients' row loop runs over the output
#: positions j outermost; below it, over the taps.
GRADS_POSITIONS_OUTER = 32


def _direct_conv2d_grads(x, dz, dkernel, dbias, with_bias, parts, kh, sh, dh, top, oh, kw, sw, dw, left, ow):
    """dkernel[u, v, ci, q] = sum_{b, i, j} x[b, i sh + u dh - top, j sw + v dw - left, ci] dz[b, i, j, q]
    and, when ``with_bias``, dbias[q] = sum_{b, i, j} dz[b, i, j, q]: the rows (b, i) in ``parts``
    blocks, each block's sums on their own, the blocks' sums added in order (reassociated: the
    loops vectorise). From :data:`GRADS_POSITIONS_OUTER` channel-filter pairs c f, a row's terms
    go position j by position j: each x value in j's window times dz's contiguous row of f
    filters, into dK's row of the tap (vectorised over q). Below it, tap by tap: dz's row goes to
    a (f, ow) buffer and each (tap, q) term is one dot product over the positions j that read
    inside the image (vectorised over j)."""
    n, h, w, c = x.shape
    f = dkernel.shape[3]
    taps = kh * kw * c
    xf, df = x.reshape(-1), dz.reshape(-1)
    rows = n * oh
    partial = np.zeros((parts, taps * f + 16), dtype=dkernel.dtype)  # + 16: no cache line shared
    partial_bias = np.zeros((parts, f + 16), dtype=dkernel.dtype)
    step, width, uf = _U(sw * c), _U(ow), _U(f)
    positions_outer = c * f >= GRADS_POSITIONS_OUTER
    block = (rows + parts - 1) // parts
    for p in prange(parts):
        acc, acc_bias = partial[p], partial_bias[p]
        dzt = np.empty(f * ow, dtype=dz.dtype)
        for row in range(p * block, min(rows, (p + 1) * block)):
            b = row // oh
            i = row - b * oh
            db = _U(row * ow * f)
            if positions_outer:
                for j in range(ow):
                    d = db + _U(j) * uf
                    if with_bias:
                        for q in range(uf):
                            acc_bias[q] += df[d + q]
                    for u in range(kh):
                        si = i * sh + u * dh - top
                        if si < 0 or si >= h:
                            continue
                        for v in range(kw):
                            sj = j * sw + v * dw - left
                            if sj < 0 or sj >= w:
                                continue
                            xb = _U(((b * h + si) * w + sj) * c)
                            tb = _U((u * kw + v) * c) * uf
                            for ci in range(_U(c)):
                                xv = xf[xb + ci]
                                t = tb + ci * uf
                                for q in range(uf):
                                    acc[t + q] += xv * df[d + q]
                continue
            for j in range(width):
                for q in range(uf):
                    dzt[q * width + j] = df[db + j * uf + q]
            if with_bias:
                for q in range(uf):
                    s = acc_bias[q]
                    for j in range(width):
                        s += dzt[q * width + j]
                    acc_bias[q] = s
            for u in range(kh):
                si = i * sh + u * dh - top
                if si < 0 or si >= h:
                    continue
                for v in range(kw):
                    shift = v * dw - left
                    lo, hi = _run(shift, sw, w, ow)
                    if hi <= lo:
                        continue
                    for ci in range(c):
                        start = _U(((b * h + si) * w + lo * sw + shift) * c + ci)
                        tap = _U(((u * kw + v) * c + ci) * f)
                        for q in range(uf):
                            a = q * width + _U(lo)
                            s = acc[tap + q]
                            for k in range(_U(hi - lo)):
                                s += xf[start + k * step] * dzt[a + k]
                            acc[tap + q] = s
    add_blocks(partial, dkernel.reshape(-1), taps * f)
    if with_bias:
        add_blocks(partial_bias, dbias, f)


direct_conv2d_grads = _twin(_direct_conv2d_grads, fastmath={"reassoc", "contract", "nsz"})
