"""Training steps through ``fit`` -- layer by layer (``jit_compile=False``) and through the
compiled whole-step kernel where ``fit`` takes it (``jit_compile=True``) -- and one Fashion-MNIST
epoch through ``fit`` (shuffling, accuracy, the last partial batch)."""
import numpy as np
import pytest

from tensornet.layers import Dense
from tensornet.models import Sequential
from tensornet.optimizers import SGD

MODELS = {"784-64-10": ((784, 64, 10), 32), "784-512-512-10": ((784, 512, 512, 10), 128),
          "784-2048-2048-10": ((784, 2048, 2048, 10), 256)}
STEPS = 4  # batches per timed fit call


def build(ops, sizes, metrics=(), jit_compile="auto"):
    model = Sequential(seed=0)
    for i, units in enumerate(sizes[1:]):
        kwargs = {"input_shape": (sizes[0],)} if i == 0 else {}
        model.add(Dense(units, activation="softmax" if i == len(sizes) - 2 else "relu", **kwargs))
    model.compile(optimizer=SGD(lr=0.01, momentum=0.9), loss="categorical_crossentropy",
                  metrics=list(metrics), backend=ops, jit_compile=jit_compile)
    return model


@pytest.mark.parametrize("step", ["layered", "compiled"])
@pytest.mark.parametrize("name", list(MODELS))
def test_train_steps(run, ops, name, step):
    """``STEPS`` steps through one ``fit`` call (in order, no shuffling, no progress output)."""
    sizes, batch = MODELS[name]
    model = build(ops, sizes, jit_compile=step == "compiled")
    rng = np.random.default_rng(0)
    x = ops.asarray(rng.standard_normal((STEPS * batch, sizes[0])).astype(np.float32))
    y = ops.asarray(np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], STEPS * batch)])
    fit = {"batch_size": batch, "epochs": 1, "verbose": 0, "shuffle": False}
    before = model.get_weights()
    try:
        model.fit(x, y, **fit)
    except ValueError as exc:  # jit_compile=True where fit cannot compile this model's step
        if step != "compiled" or "jit_compile=True" not in str(exc):
            raise
        pytest.skip(str(exc))
    assert model.step_path.startswith(step)
    after = model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))  # the steps moved the weights
    run(model.fit, x, y, **fit, rate=(STEPS * batch, "samples/s"))


def test_fashion_mnist_epoch(run, ops, quick, benchmark):
    from tensornet.datasets import fashion_mnist
    from tensornet.utils import to_categorical

    try:
        (x, y), _ = fashion_mnist.load_data()
    except Exception as exc:  # no data set on this machine
        pytest.skip(f"Fashion-MNIST not available: {exc}")
    if quick:
        x, y = x[:3000], y[:3000]
    x = ops.asarray(x.reshape(len(x), -1).astype(np.float32) / 255.0)
    y = ops.asarray(to_categorical(y, 10).astype(np.float32))
    model = build(ops, (784, 512, 512, 10), metrics=["accuracy"])
    benchmark.pedantic(model.fit, args=(x, y), kwargs={"batch_size": 128, "epochs": 1, "verbose": 0},
                       rounds=1 if quick else 3, iterations=1, warmup_rounds=0 if quick else 1)
    history = model.history.history
    assert np.isfinite(history["loss"][-1]) and 0.0 <= history["accuracy"][-1] <= 1.0
    if not quick and benchmark.stats is not None:
        benchmark.extra_info["samples/s"] = round(len(x) / benchmark.stats.stats.median)
