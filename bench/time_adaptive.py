"""Before/after timing of the adaptive optimizer updates and the dropout mask on the NumPy backend,
plus a 2-epoch fit of Keras' RMSprop MLP (784-512-512-10, Dropout 0.2) on Fashion-MNIST.

    python bench/time_adaptive.py [--no-fit]       (TENSORNET_CPU_KERNELS=numpy for the fallback)
"""
import sys
import time

import numpy as np

from tensornet.backend.numpy_backend import NumpyBackend

SIZE = 669_706  # 784-512-512-10
STEPS = 50


def _best(fn, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    ops = NumpyBackend()
    print("kernels:", ops.accelerator)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(SIZE).astype(np.float32)
    g = rng.standard_normal(SIZE).astype(np.float32)
    init = [np.abs(rng.standard_normal(SIZE)).astype(np.float32), np.zeros(SIZE, np.float32)]
    s = []
    mu = 0.9 * (1.0 - 0.5 * 0.96 ** 0.004)
    updates = {
        "rmsprop": lambda: ops.rmsprop_update(w, g, s[0], 1e-3, 0.9, 1e-7, 0.0, None, False, None),
        "rmsprop-c-mom": lambda: ops.rmsprop_update(w, g, s[0], 1e-3, 0.9, 1e-7, 0.9, s[1], True, s[2]),
        "adam": lambda: ops.adam_update(w, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-7, 5),
        "amsgrad": lambda: ops.adam_update(w, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-7, 5, True, s[2]),
        "adagrad": lambda: ops.adagrad_update(w, g, s[0], 1e-3, 1e-7),
        "adadelta": lambda: ops.adadelta_update(w, g, s[0], s[1], 1.0, 0.95, 1e-7),
        "adamax": lambda: ops.adamax_update(w, g, s[0], s[1], 2e-3, 0.9, 0.999, 1e-7, 5),
        "nadam": lambda: ops.nadam_update(w, g, s[0], s[1], 2e-3, 0.9, 0.999, 1e-7, mu, mu, mu * mu, 1),
    }
    for name, fn in updates.items():
        s[:] = [init[0].copy(), init[0].copy(), init[1].copy()]  # finite state for every rule
        fn()  # compile / warm
        t = _best(lambda: [fn() for _ in range(STEPS)])
        print(f"{name:14s} {STEPS} x {SIZE}: {t * 1e3:8.2f} ms  ({t / STEPS * 1e6:7.1f} us/update)")
    out = np.empty((128, 512), np.float32)
    drng = np.random.default_rng(1)
    ops.dropout_mask(drng, out.shape, 0.2, np.float32, out=out)
    t = _best(lambda: [ops.dropout_mask(drng, out.shape, 0.2, np.float32, out=out) for _ in range(200)])
    print(f"dropout_mask   200 x 128x512:  {t * 1e3:8.2f} ms  ({t / 200 * 1e6:7.1f} us/mask)")
    if "--no-fit" in sys.argv:
        return
    from tensornet.datasets import fashion_mnist
    from tensornet.layers import Dense, Dropout
    from tensornet.models import Sequential
    from tensornet.optimizers import RMSprop
    from tensornet.utils import to_categorical

    (x, y), _ = fashion_mnist.load_data()
    x = x.reshape(60000, 784).astype("float32") / 255
    y = to_categorical(y, 10)
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dropout(0.2),
                        Dense(512, activation="relu"), Dropout(0.2), Dense(10, activation="softmax")], seed=0)
    model.compile(loss="categorical_crossentropy", optimizer=RMSprop(), metrics=["accuracy"], backend=ops)
    model.fit(x[:1280], y[:1280], batch_size=128, epochs=1, verbose=0)  # warm-up / compile
    for epoch in range(2):
        start = time.perf_counter()
        history = model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        print(f"fit epoch {epoch}: {time.perf_counter() - start:.2f} s  loss {history.history['loss'][0]:.4f}")


if __name__ == "__main__":
    main()
