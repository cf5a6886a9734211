"""Convolution and pooling operations of :class:`~tensornet.backend.base.Backend`, written once
against ``self.xp`` (NumPy or CuPy), channels last.

Layouts: images ``x`` (n, h, w, c); kernels (kh, kw, c, f); outputs (n, oh, ow, f). A window
geometry per spatial axis is ``(kernel, stride, dilation, pad_before, pad_after)`` as
:func:`window_geometry` computes it from Keras' ``padding`` ("valid" or "same").

Convolution is im2col followed by one matrix product (the equations, with p the padded input):

    cols[(b, i, j), (u, v, ci)] = p[b, i s_h + u d_h, j s_w + v d_w, ci]     (im2col)
    z = cols @ K + bias,   K = kernel reshaped to (kh kw c, f)
    dK = cols^T dz,  dbias = sum_rows(dz),  dcols = dz K^T,
    dx = col2im(dcols): every dcols entry added back to the pixel it was read from.

Pooling reads the same windows, one offset (u, v) of the pool at a time, so no Python loop
runs over pixels: max pooling keeps the first maximum of each window (the gradient goes to
it alone, ties included, as TensorFlow and PyTorch route it); average pooling divides by the
number of window entries inside the image (padding excluded, as TensorFlow).
"""
from __future__ import annotations

import math


def window_geometry(size: int, kernel: int, stride: int, dilation: int, padding: str):
    """``(out_size, pad_before, pad_after)`` of one spatial axis (TensorFlow's rule).

    effective kernel k' = dilation (kernel - 1) + 1;
    "valid": out = floor((size - k') / stride) + 1, no padding (out < 1 when k' > size);
    "same":  out = ceil(size / stride), total padding max((out - 1) stride + k' - size, 0),
    pad_before = total // 2 and the extra one at the bottom / right."""
    effective = dilation * (kernel - 1) + 1
    if padding == "valid":
        return (size - effective) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2, total - total // 2


def conv_geometry(in_shape, kernel_size, strides, dilation, padding):
    """The (rows, cols) geometries ``(kernel, stride, dilation, pad_before, pad_after, out_size)``
    of windows ``kernel_size`` over images of per-example shape ``in_shape`` (h, w, c), each axis
    as :func:`window_geometry` computes it."""
    geometries = []
    for axis in range(2):
        out, before, after = window_geometry(in_shape[axis], kernel_size[axis], strides[axis],
                                             dilation[axis], padding)
        geometries.append((kernel_size[axis], strides[axis], dilation[axis], before, after, out))
    return tuple(geometries)


def _axis(geometry, u):
    """The slice of the padded axis that window offset ``u`` reads for every output position."""
    kernel, stride, dilation, before, after, out = geometry
    start = u * dilation
    return slice(start, start + stride * (out - 1) + 1, stride)


class ConvOps:
    """im2col / col2im, 2-D convolution and pooling over ``self.xp`` (a mixin of
    :class:`~tensornet.backend.base.Backend`, which provides ``xp`` and ``scratch``).

    ``rows`` and ``cols`` are geometries ``(kernel, stride, dilation, pad_before, pad_after,
    out_size)`` of the height and width axes (:func:`conv_geometry` builds them)."""

    def _padded(self, x, rows, cols, fill, key):
        """``x`` (n, h, w, c) inside a border of ``fill`` (``x`` itself without padding)."""
        top, bottom, left, right = rows[3], rows[4], cols[3], cols[4]
        if not (top or bottom or left or right):
            return x
        n, h, w, c = x.shape
        p = self.scratch(key, (n, h + top + bottom, w + left + right, c), x.dtype)
        p[:, :top] = fill
        p[:, top + h:] = fill
        p[:, top:top + h, :left] = fill
        p[:, top:top + h, left + w:] = fill
        p[:, top:top + h, left:left + w] = x
        return p

    def _padded_zeros(self, x_shape, rows, cols, dtype, name):
        """A zeroed scratch buffer of the padded shape of images ``x_shape`` (n, h, w, c): where
        the backward passes add their window gradients before :meth:`_interior` crops them."""
        n, h, w, c = x_shape
        padded = (n, h + rows[3] + rows[4], w + cols[3] + cols[4], c)
        p = self.scratch((name, padded), padded, dtype)
        p[...] = 0
        return p

    def _interior(self, p, x_shape, rows, cols, out):
        """The image part of the padded ``p``: into ``out`` when given, else a contiguous copy."""
        h, w = x_shape[1], x_shape[2]
        top, left = rows[3], cols[3]
        interior = p[:, top:top + h, left:left + w, :]
        if out is None:
            return self.xp.ascontiguousarray(interior)
        out[...] = interior
        return out

    # ------------------------------------------------------------------ im2col / col2im
    def im2col(self, x, rows, cols, out=None):
        """The patches of ``x`` (n, h, w, c) as rows of a matrix (n oh ow, kh kw c):
        ``out[(b, i, j), (u, v, ci)] = p[b, i s_h + u d_h, j s_w + v d_w, ci]``, p the
        zero-padded input. A 1x1 window with stride 1 and no padding is ``x`` itself, reshaped."""
        n, c = x.shape[0], x.shape[3]
        kh, kw, oh, ow = rows[0], cols[0], rows[5], cols[5]
        if kh == kw == 1 and rows[1] == cols[1] == 1 and not (rows[3] or rows[4] or cols[3] or cols[4]):
            flat = x.reshape(n * oh * ow, c)
            if out is None:
                return flat
            out[...] = flat
            return out
        p = self._padded(x, rows, cols, 0, ("im2col_pad", x.shape))
        if out is None:
            out = self.xp.empty((n * oh * ow, kh * kw * c), dtype=x.dtype)
        patches = out.reshape(n, oh, ow, kh, kw, c)
        for u in range(kh):
            for v in range(kw):
                patches[:, :, :, u, v, :] = p[:, _axis(rows, u), _axis(cols, v), :]
        return out

    def col2im(self, dcols, x_shape, rows, cols, out=None):
        """The adjoint of :meth:`im2col`: ``out`` (n, h, w, c) = the sum, over every patch entry
        of ``dcols`` (n oh ow, kh kw c), added to the input pixel it was read from (entries
        read from the padding are dropped)."""
        n, h, w, c = x_shape
        kh, kw, oh, ow = rows[0], cols[0], rows[5], cols[5]
        unpadded = not (rows[3] or rows[4] or cols[3] or cols[4])
        if unpadded:
            p = out if out is not None else self.xp.empty(tuple(x_shape), dtype=dcols.dtype)
            p[...] = 0
        else:
            p = self._padded_zeros(x_shape, rows, cols, dcols.dtype, "col2im_pad")
        patches = dcols.reshape(n, oh, ow, kh, kw, c)
        for u in range(kh):
            for v in range(kw):
                p[:, _axis(rows, u), _axis(cols, v), :] += patches[:, :, :, u, v, :]
        if p is out:
            return out
        return self._interior(p, x_shape, rows, cols, out)

    # ------------------------------------------------------------------ convolution
    def conv2d(self, x, kernel, bias, rows, cols, out=None, cols_out=None):
        """z = im2col(x) @ K (+ bias), K = ``kernel`` (kh, kw, c, f) as (kh kw c, f).
        Returns ``(z, patches)``: z (n, oh, ow, f) in ``out`` when given, and the im2col matrix
        (in ``cols_out`` when given) that :meth:`conv2d_backward` needs."""
        n, f = x.shape[0], kernel.shape[3]
        oh, ow = rows[5], cols[5]
        patches = self.im2col(x, rows, cols, out=cols_out)
        z2 = None if out is None else out.reshape(n * oh * ow, f)
        z2 = self.matmul(patches, kernel.reshape(-1, f), out=z2)
        if bias is not None:
            self.bias_add(z2, bias, out=z2)
        return z2.reshape(n, oh, ow, f), patches

    def conv2d_backward(self, dz, patches, x_shape, kernel, rows, cols, dx_out=None, dkernel_out=None,
                        dbias_out=None, need_dx=True):
        """Gradients of :meth:`conv2d`: dK = patches^T dz, dbias = sum_rows(dz) (when
        ``dbias_out`` is given), dx = col2im(dz K^T) (None unless ``need_dx``).
        Returns ``(dx, dkernel, dbias)``; dkernel has ``kernel``'s shape."""
        f = kernel.shape[3]
        dz2 = dz.reshape(-1, f)
        k2 = kernel.reshape(-1, f)
        dk2 = None if dkernel_out is None else dkernel_out.reshape(k2.shape)
        dbias = None if dbias_out is None else self.sum_rows(dz2, out=dbias_out)
        if not need_dx:
            dk2 = self.matmul(patches, dz2, trans_a=True, out=dk2)
            return None, dk2.reshape(kernel.shape), dbias
        dcols = self.scratch(("conv2d_dcols", patches.shape), patches.shape, dz.dtype)
        dk2, dcols = self.matmuls(((patches, dz2, dk2 if dk2 is not None else
                                    self.xp.empty(k2.shape, dtype=dz.dtype), True, False),
                                   (dz2, k2, dcols, False, True)))
        dx = self.col2im(dcols, x_shape, rows, cols, out=dx_out)
        return dx, dk2.reshape(kernel.shape), dbias

    # ------------------------------------------------------------------ pooling
    def max_pool2d(self, x, rows, cols, out=None, argmax_out=None):
        """y[b, i, j, ch] = max over the window (u, v) of p[b, i s_h + u, j s_w + v, ch], p the
        input padded with -inf; ``argmax`` (int32) holds u kw + v of the first maximum.
        Returns ``(y, argmax)``."""
        xp = self.xp
        n, c = x.shape[0], x.shape[3]
        kh, kw, oh, ow = rows[0], cols[0], rows[5], cols[5]
        p = self._padded(x, rows, cols, -math.inf, ("pool_pad", x.shape))
        y = out if out is not None else xp.empty((n, oh, ow, c), dtype=x.dtype)
        argmax = argmax_out if argmax_out is not None else xp.empty((n, oh, ow, c), dtype="int32")
        y[...] = p[:, _axis(rows, 0), _axis(cols, 0), :]
        argmax[...] = 0
        better = self.scratch(("max_pool_better", y.shape), y.shape, "bool")
        for k in range(1, kh * kw):
            window = p[:, _axis(rows, k // kw), _axis(cols, k % kw), :]
            xp.greater(window, y, out=better)
            xp.copyto(y, window, where=better)
            xp.copyto(argmax, k, where=better)
        return y, argmax

    def max_pool2d_backward(self, dy, argmax, x_shape, rows, cols, out=None):
        """dx: each dy[b, i, j, ch] added to the input pixel of its window's first maximum."""
        kh, kw = rows[0], cols[0]
        p = self._padded_zeros(x_shape, rows, cols, dy.dtype, "max_pool_dx")
        picked = self.scratch(("max_pool_picked", dy.shape), dy.shape, dy.dtype)
        for k in range(kh * kw):
            self.xp.multiply(dy, argmax == k, out=picked)
            p[:, _axis(rows, k // kw), _axis(cols, k % kw), :] += picked
        return self._interior(p, x_shape, rows, cols, out)

    def _pool_counts(self, x_shape, rows, cols, dtype):
        """count[i, j, 0]: how many entries of window (i, j) lie inside the image (padded
        positions [i s, i s + k) against the image's [pad_before, pad_before + size))."""
        counts = []
        for size, (kernel, stride, _dilation, before, _after, out) in zip(x_shape[1:3], (rows, cols)):
            counts.append([min(i * stride + kernel, before + size) - max(i * stride, before) for i in range(out)])
        grid = [[a * b for b in counts[1]] for a in counts[0]]
        return self.xp.asarray(grid, dtype=dtype).reshape(rows[5], cols[5], 1)

    def avg_pool2d(self, x, rows, cols, out=None):
        """y[b, i, j, ch] = sum over the window of p[b, i s_h + u, j s_w + v, ch] / count[i, j],
        p zero-padded and count the window's entries inside the image."""
        xp = self.xp
        n, c = x.shape[0], x.shape[3]
        kh, kw, oh, ow = rows[0], cols[0], rows[5], cols[5]
        p = self._padded(x, rows, cols, 0, ("pool_pad", x.shape))
        y = out if out is not None else xp.empty((n, oh, ow, c), dtype=x.dtype)
        y[...] = p[:, _axis(rows, 0), _axis(cols, 0), :]
        for k in range(1, kh * kw):
            y += p[:, _axis(rows, k // kw), _axis(cols, k % kw), :]
        y /= self._pool_counts(x.shape, rows, cols, x.dtype)
        return y

    def avg_pool2d_backward(self, dy, x_shape, rows, cols, out=None):
        """dx: dy[b, i, j, ch] / count[i, j] added to every input pixel of window (i, j)."""
        kh, kw = rows[0], cols[0]
        p = self._padded_zeros(x_shape, rows, cols, dy.dtype, "avg_pool_dx")
        share = self.xp.divide(dy, self._pool_counts(x_shape, rows, cols, dy.dtype),
                               out=self.scratch(("avg_pool_share", dy.shape), dy.shape, dy.dtype))
        for k in range(kh * kw):
            p[:, _axis(rows, k // kw), _axis(cols, k % kw), :] += share
        return self._interior(p, x_shape, rows, cols, out)
