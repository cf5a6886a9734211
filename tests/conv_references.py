"""Direct, loop-over-output-pixels NumPy references for the convolution and pooling tests,
written from the textbook definitions (independent of the backend's im2col), and a gradient
check of a single layer against central finite differences."""
from __future__ import annotations

import math

import numpy as np

from helpers import check_gradient


def same_padding(size, kernel, stride, dilation=1):
    """TensorFlow's "same": output ceil(size / stride), the odd padding pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return out, total // 2, total - total // 2


def pads(x_shape, kernel, strides, dilation, padding):
    """((top, bottom), (left, right)) and (oh, ow)."""
    result, outs = [], []
    for axis in range(2):
        size, k, s, d = x_shape[1 + axis], kernel[axis], strides[axis], dilation[axis]
        if padding == "same":
            out, before, after = same_padding(size, k, s, d)
        else:
            out, before, after = (size - d * (k - 1) - 1) // s + 1, 0, 0
        result.append((before, after))
        outs.append(out)
    return result, outs


def np_conv2d(x, kernel, bias, strides=(1, 1), padding="valid", dilation=(1, 1)):
    kh, kw, _, f = kernel.shape
    (ph, pw), (oh, ow) = pads(x.shape, (kh, kw), strides, dilation, padding)
    p = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    out = np.zeros((x.shape[0], oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            for u in range(kh):
                for v in range(kw):
                    out[:, i, j, :] += p[:, i * strides[0] + u * dilation[0], j * strides[1] + v * dilation[1], :] \
                        @ kernel[u, v]
    return out + (0 if bias is None else bias)


def np_pool2d(x, pool, strides, padding, kind):
    (ph, pw), (oh, ow) = pads(x.shape, pool, strides, (1, 1), padding)
    fill = -np.inf if kind == "max" else np.nan
    p = np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=fill)
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            window = p[:, i * strides[0]:i * strides[0] + pool[0], j * strides[1]:j * strides[1] + pool[1], :]
            out[:, i, j, :] = window.max(axis=(1, 2)) if kind == "max" else np.nanmean(window, axis=(1, 2))
    return out


def check_layer_gradients(layer, x, seed=0, rtol=1e-6, atol=1e-9):
    """loss = sum(layer(x) * r) for a fixed random r: dL/dx and dL/d(each weight) from
    ``backward(r)`` against central differences in float64."""
    r = np.random.default_rng(seed).standard_normal(layer.forward(x, training=True).shape)

    def loss():
        return float(np.sum(layer.forward(x, training=True) * r))

    layer.forward(x, training=True)
    dx = layer.backward(r)
    dx = None if dx is None else dx.copy()
    grads = {name: g.copy() for name, g in layer.gradients.items()}
    if dx is not None:
        check_gradient(loss, x, dx, rtol=rtol, atol=atol, what=f"{layer.name} dx")
    for name, weight in layer.weights.items():
        check_gradient(loss, weight, grads[name], rtol=rtol, atol=atol, what=f"{layer.name} d{name}")
    return dx, grads
