"""The CuPy backend on convolutional networks (marked ``gpu``; skipped with ``cupy_status()``'s
reason where CuPy, the driver or a GPU is missing): the im2col family's kernels against the
NumPy reference on the device, on random, never-zero inputs of awkward sizes, and a CNN trained
on CuPy against the same CNN trained on NumPy (same weights, same batches) to float32 rounding;
saving the GPU-trained CNN and loading it on the CPU gives the same predictions."""
from __future__ import annotations

import numpy as np
import pytest

from tensornet.backend import Backend, cupy_status, get_backend, use_backend
from tensornet.backend.conv_ops import conv_geometry

REFERENCE = Backend()
CASES = [((3, 9, 8, 5), (3, 3), (1, 1), (1, 1), "same"), ((2, 11, 10, 3), (2, 3), (2, 1), (1, 2), "same"),
         ((4, 12, 12, 8), (3, 3), (2, 2), (1, 1), "valid")]


@pytest.fixture(scope="module")
def gpu():
    usable, reason = cupy_status()
    if not usable:
        pytest.skip(reason)
    return get_backend("cupy")


def _nonzero(rng, shape, dtype):
    return (rng.uniform(0.05, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)).astype(dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,window,strides,dilation,padding", CASES)
def test_conv_kernels_match_the_reference(gpu, dtype, shape, window, strides, dilation, padding):
    rng = np.random.default_rng(1)
    x = _nonzero(rng, shape, dtype)
    rows, cols = conv_geometry(shape[1:], window, strides, dilation, padding)
    patches = gpu.im2col(gpu.asarray(x), rows, cols)
    np.testing.assert_array_equal(gpu.to_numpy(patches), REFERENCE.im2col(x, rows, cols))
    dcols = _nonzero(rng, patches.shape, dtype)
    np.testing.assert_array_equal(gpu.to_numpy(gpu.col2im(gpu.asarray(dcols), shape, rows, cols)),
                                  REFERENCE.col2im(dcols, shape, rows, cols))
    pool = conv_geometry(shape[1:], (2, 2), (2, 2), (1, 1), padding)
    y, index = gpu.max_pool2d(gpu.asarray(x), *pool)
    y_ref, index_ref = REFERENCE.max_pool2d(x, *pool)
    np.testing.assert_array_equal(gpu.to_numpy(y), y_ref)
    np.testing.assert_array_equal(gpu.to_numpy(index), index_ref)
    dy = _nonzero(rng, y_ref.shape, dtype)
    np.testing.assert_array_equal(gpu.to_numpy(gpu.max_pool2d_backward(gpu.asarray(dy), index, shape, *pool)),
                                  REFERENCE.max_pool2d_backward(dy, index_ref, shape, *pool))


def _cnn():
    from tensornet.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from tensornet.models import Sequential

    model = Sequential([Conv2D(6, 3, padding="same", activation="relu", input_shape=(12, 12, 1)), MaxPooling2D(),
                        Conv2D(8, 3, activation="relu"), BatchNormalization(), MaxPooling2D(), Dropout(0.2, seed=3),
                        Flatten(), Dense(10, activation="softmax")], seed=4)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.gpu
def test_a_cnn_trains_on_the_gpu_as_on_the_cpu(gpu, tmp_path):
    from tensornet.models import load_model

    rng = np.random.default_rng(2)
    x = rng.random((96, 12, 12, 1), dtype=np.float32)
    y = rng.integers(0, 10, 96)
    results = []
    for name in ("numpy", "cupy"):
        with use_backend(name):
            model = _cnn()
            history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
            results.append((model.get_weights(), history.history["loss"], model))
    (cpu_weights, cpu_loss, _), (gpu_weights, gpu_loss, gpu_model) = results
    for ours, theirs in zip(gpu_weights, cpu_weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-5)
    gpu_model.save(tmp_path / "cnn.npz")
    with use_backend("numpy"):
        loaded = load_model(tmp_path / "cnn.npz")
        np.testing.assert_allclose(loaded.predict(x, verbose=0), gpu_model.ops.to_numpy(gpu_model.predict(x, verbose=0)),
                                   rtol=1e-5, atol=1e-6)
