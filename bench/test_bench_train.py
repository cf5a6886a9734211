"""One whole training step (forward, fused loss, backward, SGD over the flat buffer) -- layer by
layer, and as the compiled step ``fit`` takes where it can (tensornet/compiled_step.py) -- and
one Fashion-MNIST epoch through ``fit`` (shuffling, accuracy, the last partial batch)."""
import numpy as np
import pytest

from tensornet.layers import Dense
from tensornet.models import Sequential
from tensornet.optimizers import SGD
from tensornet.trainer import EpochTotals

MODELS = {"784-64-10": ((784, 64, 10), 32), "784-512-512-10": ((784, 512, 512, 10), 128),
          "784-2048-2048-10": ((784, 2048, 2048, 10), 256)}


def build(ops, sizes, metrics=()):
    model = Sequential(seed=0)
    for i, units in enumerate(sizes[1:]):
        kwargs = {"input_shape": (sizes[0],)} if i == 0 else {}
        model.add(Dense(units, activation="softmax" if i == len(sizes) - 2 else "relu", **kwargs))
    model.compile(optimizer=SGD(lr=0.01, momentum=0.9), loss="categorical_crossentropy",
                  metrics=list(metrics), backend=ops)
    return model


@pytest.mark.parametrize("step", ["layered", "compiled"])
@pytest.mark.parametrize("name", list(MODELS))
def test_train_step(run, ops, name, step):
    sizes, batch = MODELS[name]
    model = build(ops, sizes)
    trainer = model._trainer
    rng = np.random.default_rng(0)
    x = ops.asarray(rng.standard_normal((batch, sizes[0])).astype(np.float32))
    y = ops.asarray(np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], batch)])
    totals = EpochTotals(ops, model.metrics)
    ops.start()  # as fit does
    try:
        if step == "compiled":
            trainer.prepare_step(batch)
            if trainer.compiled_step is None:
                pytest.skip(f"fit takes the {trainer.step_path} step here")
        before = [w.copy() for w in model.get_weights()]
        trainer.train_step(x, y, totals)
        after = model.get_weights()
        assert all(np.isfinite(w).all() for w in after)
        assert any(not np.array_equal(a, b) for a, b in zip(before, after))  # the step moved the weights
        run(trainer.train_step, x, y, totals, rate=(batch, "samples/s"))
    finally:
        trainer.compiled_step = None
        ops.finish()


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
