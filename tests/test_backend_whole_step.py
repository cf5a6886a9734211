"""The NumPy backend's whole training step (tensornet/backend/numpy_whole_step.py, _numba_step.py):
which models it serves, and that it trains them as the layered step does."""
import numpy as np
import pytest

import tensornet as tn
from tensornet.backend.base import Backend
from tensornet.backend import numpy_whole_step
from tensornet.backend.numpy_whole_step import plan, unserved
from tensornet.backend.training_step import LayeredStep
from tensornet.errors import DivergenceError
from tensornet.layers import Dense, Dropout, Flatten
from tensornet.models import load_model
from tensornet.models.sequential import check_jit_compile
from tensornet.training.epoch import EpochTotals

from helpers import numpy_backend  # noqa: F401  (autouse: pins the NumPy backend)

# Layer sizes whose largest product is threaded at batch 64 (64 * 300 * 256 = 4.9M multiply-adds).
SIZES = (300, 256, 96, 10)
BATCH = 64


def build(sizes=SIZES, dtype="float32", optimizer=None, loss="categorical_crossentropy", hidden="relu",
          jit_compile="auto", use_bias=True, seed=3, flatten=False):
    layers = [Flatten(input_shape=(sizes[0] // 10, 10))] if flatten else []
    first = {} if flatten else {"input_shape": (sizes[0],)}
    for i, units in enumerate(sizes[1:-1]):
        layers.append(Dense(units, activation=hidden, use_bias=use_bias or i != 0, **(first if i == 0 else {})))
    layers.append(Dense(sizes[-1], activation="softmax"))
    model = tn.Sequential(layers, seed=seed, dtype=dtype)
    model.compile(optimizer=optimizer or tn.optimizers.SGD(0.05, momentum=0.9), loss=loss, metrics=["accuracy"],
                  jit_compile=jit_compile)
    return model


def batches(sizes=SIZES, batch=BATCH, count=3, dtype="float32", sparse=False, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        x = rng.standard_normal((batch, sizes[0])).astype(dtype)
        labels = rng.integers(0, sizes[-1], batch)
        out.append((x, labels if sparse else np.eye(sizes[-1], dtype=dtype)[labels]))
    return out


def plan_or_skip(model, batch=BATCH):
    """The model's whole step inside a loop (the backend started); skipped where this machine
    has none (no Numba, no MKL on the shared pool)."""
    model.ops.start()
    step, reason = plan(model.ops, model, batch)
    if step is None:
        model.ops.finish()
        pytest.skip(f"no compiled step here: {reason}")
    return step


def run_steps(model, data, compiled):
    """Train ``model`` on ``data`` through the whole or the layered step; returns per step
    (probabilities, loss sum, gradient buffer) copies."""
    if compiled:
        step = plan_or_skip(model, data[0][0].shape[0])
    else:
        model.ops.start()
        step = LayeredStep(model)
    seen = []
    try:
        for x, y in data:
            if compiled:
                assert step.takes(x, y)
            totals = EpochTotals(model.ops, model.metrics)
            pred, loss = step(x, y)
            totals.add(loss, pred, y)
            seen.append((pred.copy(), float(loss), model.store.groups[model.dtype][1].copy()))
    finally:
        model.ops.finish()
    return seen


def relative(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(np.asarray(b, np.float64)))


OPTIMIZERS = {
    "plain": lambda: tn.optimizers.SGD(0.1),
    "momentum": lambda: tn.optimizers.SGD(0.05, momentum=0.9),
    "nesterov": lambda: tn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "decay+weight_decay": lambda: tn.optimizers.SGD(0.05, momentum=0.5, decay=0.3, weight_decay=1e-3),
    "adam": lambda: tn.optimizers.Adam(0.01),
    "adam+decay": lambda: tn.optimizers.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-4, decay=0.3),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("hidden, use_bias, sparse", [("relu", True, False), ("linear", False, True),
                                                     ("relu", False, True)])
def test_float64_step_equals_the_layered_step(name, hidden, use_bias, sparse):
    """Probabilities, loss, every gradient and the weights, velocity and step count after three
    steps: equal to rounding (float64, where a relu kink cannot flip)."""
    models = [build(dtype="float64", optimizer=OPTIMIZERS[name](), hidden=hidden, use_bias=use_bias,
                    loss="sparse_categorical_crossentropy" if sparse else "categorical_crossentropy")
              for _ in range(2)]
    data = batches(dtype="float64", sparse=sparse)
    compiled, layered = run_steps(models[0], data, True), run_steps(models[1], data, False)
    for (p, loss, grads), (p_ref, loss_ref, grads_ref) in zip(compiled, layered):
        np.testing.assert_allclose(p, p_ref, rtol=1e-10, atol=1e-15)
        assert loss == pytest.approx(loss_ref, rel=1e-12)
        np.testing.assert_allclose(grads, grads_ref, rtol=1e-9, atol=1e-15)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)
    for key, buffer in models[1].optimizer.state["float64"].items():
        np.testing.assert_allclose(models[0].optimizer.state["float64"][key], buffer, rtol=1e-9, atol=1e-15)
    assert models[0].optimizer.iterations == models[1].optimizer.iterations == 3


def test_float32_step_trains_as_the_layered_step():
    """In float32 a row-split product may round differently, and a pre-activation within rounding
    of 0 can land on the other side of the relu's kink: the weight change over three steps agrees
    to 1e-2 (relative norm), the first step's loss to float32 rounding."""
    models = [build(dtype="float32") for _ in range(2)]
    start = models[0].get_weights()
    data = batches()
    compiled, layered = run_steps(models[0], data, True), run_steps(models[1], data, False)
    assert compiled[0][1] == pytest.approx(layered[0][1], rel=1e-5)
    np.testing.assert_allclose(compiled[0][0], layered[0][0], atol=1e-5)
    for a, b, w in zip(models[0].get_weights(), models[1].get_weights(), start):
        assert a.dtype == np.float32
        assert relative(a - w, b - w) < 1e-2


def test_batch_sizes_in_turn_and_two_models_train_as_their_layered_twins():
    """The kernel's argument block is kept per set of arrays (_numba_step_call._block): a model
    stepped with two batch sizes in turn (two sets of workspaces), beside a second model, each
    batch a fresh array (a new address), ends where its layered twin does (float64)."""
    shapes = [((300, 256, 96, 10), (64, 37)), ((310, 300, 40, 7), (48, 48))]
    twins = [[build(sizes, dtype="float64", seed=seed) for _ in range(2)] for seed, (sizes, _) in enumerate(shapes)]
    data = []  # per model: its two batch sizes alternating, three batches of each
    for seed, (sizes, (first, second)) in enumerate(shapes):
        pairs = zip(batches(sizes, first, dtype="float64", seed=seed),
                    batches(sizes, second, dtype="float64", seed=seed + 5))
        data.append([pair for both in pairs for pair in both])
    steps = [plan_or_skip(compiled, batch[0]) for (compiled, _), (_, batch) in zip(twins, shapes)]
    seen = [[], []]
    try:
        for i in range(6):
            for step, pairs, out in zip(steps, data, seen):
                x, y = (a.copy() for a in pairs[i])
                assert step.takes(x, y)
                probs, loss = step(x, y)
                out.append((probs.copy(), float(loss)))
    finally:
        for compiled, _ in reversed(twins):
            compiled.ops.finish()
    for (compiled, layered), pairs, out in zip(twins, data, seen):
        for (probs, loss), (probs_ref, loss_ref, _) in zip(out, run_steps(layered, pairs, False)):
            np.testing.assert_allclose(probs, probs_ref, rtol=1e-10, atol=1e-15)
            assert loss == pytest.approx(loss_ref, rel=1e-12)
        for a, b in zip(compiled.get_weights(), layered.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)


def test_odd_shapes_single_row_batches_and_a_one_unit_layer():
    """Fewer rows or units than threads (one thread gets none), and Flatten in front."""
    sizes = (300, 300, 1, 3)
    models = [build(sizes=sizes, dtype="float64", flatten=True) for _ in range(2)]
    data = [(x.reshape(x.shape[0], 30, 10), y) for x, y in batches(sizes=sizes, batch=1, count=2, dtype="float64")]
    data += [(x.reshape(x.shape[0], 30, 10), y) for x, y in batches(sizes=sizes, batch=BATCH, count=1,
                                                                    dtype="float64")]
    models[0].ops.start()
    step, reason = plan(models[0].ops, models[0], 16384)  # a batch size whose product is threaded
    models[0].ops.finish()
    if step is None:
        pytest.skip(f"no compiled step here: {reason}")
    compiled, layered = [], []
    for model, out, use in ((models[0], compiled, True), (models[1], layered, False)):
        model.ops.start()
        try:
            model._trainer.step = plan(model.ops, model, 16384)[0] if use else LayeredStep(model)
            totals = EpochTotals(model.ops, model.metrics)
            for x, y in data:
                model._trainer.train_step(x, y, totals)
                out.append(model.get_weights())
        finally:
            model._trainer.step = None
            model.ops.finish()
    for after_a, after_b in zip(compiled, layered):
        for a, b in zip(after_a, after_b):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)


def test_fit_takes_the_compiled_step_and_ends_where_the_layered_fit_does():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((BATCH * 4 + 3, SIZES[0])).astype(np.float64)  # a partial last batch
    y = rng.integers(0, SIZES[-1], x.shape[0])
    models = [build(dtype="float64", jit_compile=jit, loss="sparse_categorical_crossentropy")
              for jit in ("auto", False)]
    histories = [model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0) for model in models]
    if models[0].step_path != "compiled":
        pytest.skip(f"no compiled step here: {models[0].step_path}")
    assert models[1].step_path == "layered (compile(jit_compile=False))"
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(histories[0].history[key], histories[1].history[key], rtol=1e-10)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-14)
    assert models[0].optimizer.iterations == models[1].optimizer.iterations == 10


@pytest.mark.parametrize("name", ["nesterov", "adam"])
def test_replay_of_a_step_reproduces_it_to_the_bit(name):
    """The divergence guard's replay (Trainer.checked_step: the step with update=False, then the
    optimizer's own update) makes the same gradients with the same kernel and applies the same
    element-wise arithmetic over the flat buffer."""
    model = build(optimizer=OPTIMIZERS[name]())
    (x, y), = batches(count=1)
    step = plan_or_skip(model)
    try:
        step(x, y)  # a first step: a nonzero state
        state = model.optimizer.state["float32"]
        start = [model.store.groups["float32"][0].copy()] + [buffer.copy() for buffer in state.values()]
        step(x, y)
        after_step = [model.store.groups["float32"][0].copy()] + [buffer.copy() for buffer in state.values()]
        model.store.groups["float32"][0][...] = start[0]
        for buffer, saved in zip(state.values(), start[1:]):
            buffer[...] = saved
        model.optimizer.iterations -= 1
        model._trainer.step = step
        assert model._trainer.checked_step(x, y) is None
    finally:
        model._trainer.step = None
        model.ops.finish()
    np.testing.assert_array_equal(model.store.groups["float32"][0], after_step[0])
    for buffer, expected in zip(state.values(), after_step[1:]):
        np.testing.assert_array_equal(buffer, expected)
    assert model.optimizer.iterations == 2


def test_checked_step_refuses_a_non_finite_loss_and_applies_nothing():
    model = build()
    (x, y), = batches(count=1)
    x[3, 7] = np.nan
    step = plan_or_skip(model)
    try:
        before = model.store.groups["float32"][0].copy()
        assert step.takes(x, y) and np.isnan(step(x, y, update=False)[1])
        model._trainer.step = step
        assert model._trainer.checked_step(x, y) == "loss"
    finally:
        model._trainer.step = None
        model.ops.finish()
    np.testing.assert_array_equal(model.store.groups["float32"][0], before)
    assert model.optimizer.iterations == 0


def test_a_diverging_fit_stops_at_the_same_step_either_way():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((BATCH * 6, SIZES[0])).astype(np.float32)
    x[BATCH * 4 + 5] = 3e38  # finite, but its products overflow: batch 5 (no shuffling) poisons the step
    y = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], x.shape[0])]
    errors, weights = [], []
    for jit in ("auto", False):
        model = build(jit_compile=jit)
        with pytest.raises(DivergenceError) as caught:
            model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        if jit == "auto" and model.step_path != "compiled":
            pytest.skip(f"no compiled step here: {model.step_path}")
        errors.append((caught.value.batch, caught.value.step, caught.value.quantity))
        weights.append(model.get_weights())
        assert model.optimizer.iterations == 4
    assert errors[0] == errors[1] == (4, 4, "loss")
    for a, b, in zip(*weights):
        assert np.all(np.isfinite(a))
        assert relative(a, b) < 1e-3


def test_a_batch_the_kernel_cannot_read_in_place_is_left_to_the_layered_step():
    model = build()
    (x, y), = batches(count=1)
    step = plan_or_skip(model)
    try:
        assert step.takes(x, y)
        assert not step.takes(np.asfortranarray(x), y)
        assert not step.takes(x.astype(np.float64), y)
        assert not step.takes(x, y.argmax(1).astype(np.int32))
        reference = build()
        batch = (np.asfortranarray(x), y)
        np.testing.assert_array_equal(step(*batch)[0], LayeredStep(reference)(*batch)[0])
    finally:
        model.ops.finish()
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 1


def test_once_the_pool_is_given_back_the_layered_step_takes_over():
    """As in a forked child, where a parallel region would abort the process."""
    model = build()
    (x, y), = batches(count=1)
    step = plan_or_skip(model)
    try:
        model.ops._blas_threads._pool.remove()
        assert not step.takes(x, y)
    finally:
        model.ops.finish()
    assert model.optimizer.iterations == 0


def test_clipping_switched_on_during_fit_is_honoured():
    """A callback that sets clipnorm mid-fit: the following steps clip, layer by layer."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((BATCH * 4, SIZES[0]))
    y = rng.integers(0, SIZES[-1], x.shape[0])
    weights, paths = [], []
    for jit in ("auto", False):
        model = build(dtype="float64", jit_compile=jit, loss="sparse_categorical_crossentropy")

        class ClipFromBatch2(tn.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == 1:
                    model.optimizer.clipnorm = 1e-3

        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[ClipFromBatch2()])
        weights.append(model.get_weights())
        paths.append(model.step_path)
    if paths[0] != "compiled":
        pytest.skip(f"no compiled step here: {paths[0]}")
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------------- who takes it
@pytest.mark.parametrize("change, says", [
    (dict(jit_compile=False), "jit_compile=False"),
    (dict(hidden="tanh"), "hidden layers need relu or linear"),
    (dict(loss="mse"), "softmax output with categorical or sparse categorical"),
    (dict(optimizer="rmsprop"), "the optimizer is RMSprop"),
    (dict(optimizer=tn.optimizers.Adam(amsgrad=True)), "AMSGrad"),
    (dict(optimizer=tn.optimizers.SGD(0.1, clipnorm=1.0)), "clips gradients"),
])
def test_models_it_does_not_take_are_named(change, says):
    assert says in unserved(build(**change).describe_step())


def test_other_layers_and_from_logits_are_named():
    model = tn.Sequential([Dense(64, activation="relu", input_shape=(300,)), Dropout(0.5), Dense(10, "softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert unserved(model.describe_step()) == f"layer {model.layers[1].name!r} is a Dropout, not a Dense layer"
    model = tn.Sequential([Dense(64, activation="relu", input_shape=(300,)), Dense(10)])
    model.compile(optimizer="sgd", loss=tn.losses.CategoricalCrossentropy(from_logits=True))
    assert "(from_logits)" in unserved(model.describe_step())
    assert unserved(build().describe_step()) is None


def test_large_weight_matrices_keep_the_layered_step(monkeypatch):
    monkeypatch.setattr(numpy_whole_step, "MAX_WEIGHT_BYTES", 256 * 96 * 4 - 1)
    assert "MKL's threaded products are faster there" in unserved(build().describe_step())


def test_backends_without_it_and_small_models_say_why():
    model = build()
    base = Backend.training_step(model.ops, model, BATCH)
    assert (base.path, base.reason) == ("layered", "the numpy backend has no whole-step kernel")
    assert plan(model.ops, model, BATCH) == (None, "the compiled step runs only inside fit")
    model.ops.start()
    try:
        step, reason = plan(model.ops, model, 2)
    finally:
        model.ops.finish()
    assert step is None and reason.startswith("the largest product has 153600 multiply-adds")


def test_jit_compile_true_names_the_obstacle_before_training():
    model = build(jit_compile=True, optimizer="rmsprop")
    before = model.get_weights()
    (x, y), = batches(count=1)
    with pytest.raises(ValueError, match="jit_compile=True.*the optimizer is RMSprop"):
        model.fit(x, y, batch_size=BATCH, verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value", ["yes", 1, "AUTO"])
def test_jit_compile_values_are_checked(value):
    with pytest.raises(ValueError, match="jit_compile must be 'auto', True or False"):
        check_jit_compile(value)


def test_step_path_is_none_before_fit():
    assert build().step_path is None


def test_jit_compile_is_saved(tmp_path):
    model = build(jit_compile=False)
    model.save(tmp_path / "m.tnz")
    assert load_model(tmp_path / "m.tnz").jit_compile is False
