"""Graph models (the functional API): construction and its checks, one engine for graphs and
Sequential, gradients of a whole graph against finite differences in float64, a shared layer's
gradient against the analytic sum over its calls, several inputs and outputs through compile /
fit / evaluate / predict, layer access, summary and DOT."""
import numpy as np
import pytest

from helpers import check_gradient, numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet.layers import Add, Concatenate, Dense, Dropout, Input, InputLayer, Multiply, Subtract
from tensornet.models import Model, Sequential
from tensornet.optimizers import SGD

ops = numpy_ops()


def two_input_model(dtype="float32", seed=3, units=5):
    a, b = Input(shape=(6,), name="a"), Input(shape=(4,), name="b")
    shared = Dense(units, activation="tanh", name="shared")
    ha = shared(a)
    hb = shared(Dense(6, activation="tanh", name="project")(b))
    s = Add(name="sum")([ha, hb])
    cls = Dense(3, activation="softmax", name="cls")(Concatenate(name="join")([ha, s]))
    reg = Dense(2, name="reg")(Multiply(name="gate")([s, Subtract(name="diff")([ha, hb])]))
    return Model(inputs=[a, b], outputs=[cls, reg], dtype=dtype, seed=seed)


def two_input_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    xa, xb = rng.normal(size=(n, 6)), rng.normal(size=(n, 4))
    y_cls = np.eye(3)[rng.integers(0, 3, n)]
    y_reg = rng.normal(size=(n, 2))
    return xa, xb, y_cls, y_reg


# ------------------------------------------------------------------ construction and checks
def test_model_records_layers_once_in_call_order():
    model = two_input_model()
    names = [layer.name for layer in model.layers]
    assert names[:2] == ["a", "b"] and sorted(names[2:]) == sorted(["shared", "project", "sum", "diff", "join", "gate",
                                                                     "cls", "reg"])
    assert names.index("shared") < names.index("sum") < names.index("cls")
    assert sum(layer.name == "shared" for layer in model.layers) == 1
    assert model.count_params() == (6 * 5 + 5) + (4 * 6 + 6) + (10 * 3 + 3) + (5 * 2 + 2)
    assert model.output_names == ["cls", "reg"] and model.input_names == ["a", "b"]


def test_input_layer_passes_the_batch_through():
    a = Input(shape=(3, 2), name="image")
    layer = a.layer
    assert isinstance(layer, InputLayer) and a.shape == (3, 2)
    x = np.random.default_rng(0).normal(size=(4, 3, 2))
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(2 * x), 2 * x)
    with pytest.raises(ValueError, match="shape"):
        Input()
    with pytest.raises(ValueError, match="batch_size"):
        Input(shape=(3,), batch_size=32)


def test_inputs_outputs_and_calling_a_model_on_symbolic_tensors():
    model = two_input_model()
    assert [t.layer.name for t in model.inputs] == ["a", "b"]
    assert [t.layer.name for t in model.outputs] == ["cls", "reg"] and model.outputs[0].shape == (3,)
    assert isinstance(Sequential(), Model) and Sequential().inputs is None
    with pytest.raises(TypeError, match="nesting a model"):
        model([Input(shape=(6,)), Input(shape=(4,))])


def test_disconnected_output_is_an_error_naming_the_input():
    a, b = Input(shape=(3,), name="a_in"), Input(shape=(3,), name="b_in")
    out = Add()([Dense(2)(a), Dense(2)(b)])
    with pytest.raises(ValueError, match="disconnected output.*b_in"):
        Model(inputs=a, outputs=out)


def test_unused_input_is_an_error():
    a, b = Input(shape=(3,), name="used"), Input(shape=(3,), name="spare")
    with pytest.raises(ValueError, match="input 'spare' is not used"):
        Model(inputs=[a, b], outputs=Dense(2)(a))


def test_shape_mismatch_names_the_layer_and_shapes():
    a, b = Input(shape=(3,)), Input(shape=(5,))
    layer = Dense(2, name="picky")
    layer(a)
    with pytest.raises(ValueError, match=r"picky.*\(None, 3\).*\(None, 5\)"):
        layer(b)
    with pytest.raises(ValueError, match=r"shape mismatch at layer 'flat'.*\(None, 3, 2\)"):
        Dense(2, name="flat")(Input(shape=(3, 2)))


def test_a_cycle_is_an_error():
    a = Input(shape=(3,))
    first = Dense(3, name="loop_a")
    h = first(a)
    out = Dense(3, name="loop_b")(h)
    h.node.inbound = [out]  # a graph the API cannot build: h depends on out, which depends on h
    with pytest.raises(ValueError, match="cycle"):
        Model(inputs=a, outputs=out)


def test_two_layers_with_one_name_are_an_error():
    a = Input(shape=(3,))
    with pytest.raises(ValueError, match="named 'twin'"):
        Model(inputs=a, outputs=Dense(2, name="twin")(Dense(3, name="twin")(a)))


def test_inputs_must_be_input_tensors():
    a = Input(shape=(3,))
    h = Dense(3)(a)
    with pytest.raises(ValueError, match="Input"):
        Model(inputs=h, outputs=Dense(2)(h))
    with pytest.raises(TypeError, match="symbolic tensors"):
        Model(inputs=a, outputs=np.ones((2, 2)))


# ------------------------------------------------------------------ gradients
def graph_gradient_check(model, x, y):
    """Every weight's gradient of the weighted total loss against finite differences."""
    n = x.shape[0]

    def loss():
        pred = model.forward(x, training=True)
        return float(model.evaluation_loss(pred, y)) / n

    model.forward(x, training=True)
    model.backpropagate(None, y)
    analytic = model.store.groups["float64"][1].copy()
    params = model.store.groups["float64"][0]
    check_gradient(loss, params, analytic, what="flat gradient")


def test_graph_gradients_match_finite_differences_in_float64():
    model = two_input_model(dtype="float64")
    model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"], loss_weights=[0.7, 1.3])
    xa, xb, y_cls, y_reg = two_input_data(n=7)
    x = model.prepare_x(ops, [xa, xb])
    y = model.prepare_y(ops, [y_cls, y_reg])
    assert model.heads[0].fused == "softmax"  # the softmax output's gradient is taken from its logits
    graph_gradient_check(model, x, y)


def test_a_skip_connection_and_a_tensor_read_twice_sum_their_gradients():
    a = Input(shape=(4,))
    h = Dense(4, activation="tanh")(a)
    out = Dense(2, activation="sigmoid")(Add()([h, Dense(4, activation="relu")(h)]))
    model = Model(inputs=a, outputs=out, dtype="float64", seed=1)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 4))
    y = (rng.uniform(size=(6, 2)) > 0.5).astype(np.float64)
    graph_gradient_check(model, x, y)


def test_a_shared_layer_gradient_is_the_sum_over_its_calls():
    """out = W^T xa + W^T xb + 2 b (one Dense, linear, called twice); mse against y.
    g = dL/d(out) = 2 (out - y) / (N F); dW = xa^T g + xb^T g, db = 2 sum_n g."""
    a, b = Input(shape=(3,)), Input(shape=(3,))
    shared = Dense(2, name="shared")
    model = Model(inputs=[a, b], outputs=Add()([shared(a), shared(b)]), dtype="float64", seed=0)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(7)
    xa, xb, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    kernel, bias = model.get_layer("shared").get_weights()
    bias = rng.normal(size=2)
    model.get_layer("shared").set_weights([kernel, bias])
    x = model.prepare_x(ops, [xa, xb])
    model.backpropagate(model.forward(x, training=True), y)
    out = xa @ kernel + xb @ kernel + 2 * bias
    g = 2 * (out - y) / y.size
    np.testing.assert_allclose(shared.gradients["kernel"], xa.T @ g + xb.T @ g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(shared.gradients["bias"], 2 * g.sum(axis=0), rtol=1e-12, atol=1e-15)
    # a second step overwrites (the sum is per step, never carried over)
    model.backpropagate(model.forward(x, training=True), y)
    np.testing.assert_allclose(shared.gradients["kernel"], xa.T @ g + xb.T @ g, rtol=1e-12, atol=1e-15)


def test_sequential_and_a_graph_chain_train_identically():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 5)), np.eye(3)[rng.integers(0, 3, 40)]
    seq = Sequential([Dense(8, activation="relu", input_shape=(5,)), Dropout(0.25), Dense(3, activation="softmax")],
                     seed=11)
    inp = Input(shape=(5,))
    chain = Model(inputs=inp, outputs=Dense(3, activation="softmax")(Dropout(0.25)(Dense(8, activation="relu")(inp))),
                  seed=11)
    for model in (seq, chain):
        model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    chain.set_weights(seq.get_weights())
    h1 = seq.fit(x, y, batch_size=8, epochs=2, verbose=0)
    h2 = chain.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert h1.history == h2.history
    for w1, w2 in zip(seq.get_weights(), chain.get_weights()):
        np.testing.assert_array_equal(w1, w2)


# ------------------------------------------------------------------ several inputs and outputs
def test_fit_evaluate_predict_with_lists_and_dicts():
    model = two_input_model()
    model.compile(optimizer="sgd", loss={"cls": "categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"], "reg": ["mae"]})
    xa, xb, y_cls, y_reg = two_input_data(n=30)
    history = model.fit({"a": xa, "b": xb}, {"cls": y_cls, "reg": y_reg}, batch_size=8, epochs=2, verbose=0,
                        validation_data=([xa, xb], [y_cls, y_reg]))
    assert list(history.history) == ["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae", "val_loss",
                                     "val_cls_loss", "val_reg_loss", "val_cls_accuracy", "val_reg_mae"]
    logs = {k: v[-1] for k, v in history.history.items()}
    assert logs["loss"] == pytest.approx(logs["cls_loss"] + 0.5 * logs["reg_loss"], rel=1e-5)
    values = model.evaluate([xa, xb], [y_cls, y_reg], verbose=0)
    assert values == pytest.approx([logs["val_loss"], logs["val_cls_loss"], logs["val_reg_loss"],
                                    logs["val_cls_accuracy"], logs["val_reg_mae"]], rel=1e-6)
    cls, reg = model.predict([xa, xb], batch_size=7)
    assert cls.shape == (30, 3) and reg.shape == (30, 2) and cls.dtype == np.float32
    np.testing.assert_allclose(cls.sum(axis=1), 1.0, rtol=1e-5)
    # the reported losses are those of the predictions
    assert values[2] == pytest.approx(float(np.mean((reg - y_reg) ** 2)), rel=1e-5)
    xent = -np.mean(np.sum(y_cls * np.log(np.clip(cls, 1e-7, 1)), axis=1))
    assert values[1] == pytest.approx(xent, rel=1e-4)


def test_sparse_labels_travel_beside_dense_targets():
    model = two_input_model()
    model.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], []])
    xa, xb, y_cls, y_reg = two_input_data(n=20)
    labels = y_cls.argmax(axis=1)
    history = model.fit([xa, xb], [labels, y_reg], batch_size=6, epochs=1, verbose=0)
    assert "cls_accuracy" in history.history
    accuracy = model.evaluate([xa, xb], [labels, y_reg], verbose=0)[-1]
    assert accuracy == pytest.approx(np.mean(model.predict([xa, xb])[0].argmax(axis=1) == labels))


def test_bad_inputs_and_targets_are_clear_errors():
    model = two_input_model()
    model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"])
    xa, xb, y_cls, y_reg = two_input_data(n=10)
    with pytest.raises(ValueError, match="list of 2 arrays"):
        model.fit([xa], [y_cls, y_reg], verbose=0)
    with pytest.raises(ValueError, match="list or a dict"):
        model.fit(xa, [y_cls, y_reg], verbose=0)
    with pytest.raises(ValueError, match=r"x\['b'\] must have shape \(batch, 4\)"):
        model.fit([xa, xa], [y_cls, y_reg], verbose=0)
    with pytest.raises(ValueError, match="same number of examples"):
        model.fit([xa, xb[:5]], [y_cls, y_reg], verbose=0)
    with pytest.raises(ValueError, match="missing"):
        model.fit({"a": xa}, [y_cls, y_reg], verbose=0)
    with pytest.raises(ValueError, match="not outputs of the model"):
        model.compile(optimizer="sgd", loss={"cls": "mse", "nope": "mse"})
    with pytest.raises(ValueError, match="lists 3 entries"):
        model.compile(optimizer="sgd", loss=["mse", "mse", "mse"])
    with pytest.raises(ValueError, match="loss_weights"):
        model.compile(optimizer="sgd", loss="mse", loss_weights=[1.0, -1.0])


def test_only_chains_take_the_whole_step_kernel_and_others_say_why():
    model = two_input_model()
    model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"])
    assert "2 input(s) and 2 output(s)" in model.describe_step()
    a = Input(shape=(4,))
    shared = Dense(4, activation="relu")
    one = Model(inputs=a, outputs=Dense(2, activation="softmax")(shared(shared(a))))
    one.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert "shared layer" in one.describe_step()
    b = Input(shape=(4,))
    h = Dense(4, activation="relu")(b)
    skip = Model(inputs=b, outputs=Dense(2, activation="softmax")(Add()([h, b])))
    skip.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert "merge" in skip.describe_step()
    c = Input(shape=(4,))
    chain = Model(inputs=c, outputs=Dense(2, activation="softmax")(Dense(4, activation="relu")(c)))
    chain.compile(optimizer="sgd", loss="categorical_crossentropy")
    description = chain.describe_step()
    assert [step["op"] for step in description["layers"]] == ["dense", "dense"]
    assert description["loss"] == "softmax_crossentropy"
    from tensornet.backend.numpy_whole_step import unserved

    assert unserved(description) is None  # the whole-step kernel takes a graph written as a chain
    assert "shared layer" in unserved(one.describe_step())
    seq = Sequential([Dense(4, activation="relu", input_shape=(4,)), Dense(2, activation="softmax")])
    seq.compile(optimizer="sgd", loss="categorical_crossentropy")
    strip = [{k: v for k, v in step.items() if k != "name"} for step in seq.describe_step()["layers"]]
    assert strip == [{k: v for k, v in step.items() if k != "name"} for step in description["layers"]]


# ------------------------------------------------------------------ layer access and views
def test_get_layer_and_layer_weights():
    model = two_input_model()
    shared = model.get_layer("shared")
    kernel, bias = shared.get_weights()
    assert kernel.shape == (6, 5) and bias.shape == (5,)
    shared.set_weights([np.full((6, 5), 0.25), np.arange(5.0)])
    weights = model.get_weights()
    np.testing.assert_array_equal(weights[0], np.full((6, 5), 0.25, dtype=np.float32))
    np.testing.assert_array_equal(weights[1], np.arange(5.0, dtype=np.float32))
    assert model.get_layer(index=0).name == "a"
    with pytest.raises(ValueError, match="no layer named 'missing'"):
        model.get_layer("missing")
    with pytest.raises(ValueError, match=r"must have shape \(6, 5\)"):
        shared.set_weights([np.ones((5, 6)), np.ones(5)])
    with pytest.raises(ValueError, match="holds 2 weight"):
        shared.set_weights([np.ones((6, 5))])
    seq = Sequential([Dense(3, input_shape=(2,), name="only")]).build()
    seq.get_layer("only").set_weights([np.ones((2, 3)), np.zeros(3)])
    np.testing.assert_array_equal(seq.get_weights()[0], np.ones((2, 3)))


def test_summary_shows_connections_and_counts_a_shared_layer_once():
    model = two_input_model()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text
    shared_row = next(line for line in lines if line.lstrip().startswith("shared (Dense)"))
    assert "a[0][0]" in shared_row and "project[0][0]" in shared_row and " 35 " in shared_row
    assert f"Total params: {model.count_params():,}" in text


def test_to_dot_has_a_node_per_layer_and_an_edge_per_call_input():
    model = two_input_model()
    dot = model.to_dot()
    assert dot.startswith('digraph "') and dot.rstrip().endswith("}")
    assert dot.count("[label=") == len(model.layers)
    assert dot.count("->") == sum(len(step.inputs) for step in model.topology.steps)


def test_shared_batch_normalization_gradients_match_finite_differences():
    from tensornet.layers import BatchNormalization

    a, b = Input(shape=(4,)), Input(shape=(4,))
    norm = BatchNormalization(name="norm")
    h = Add()([norm(Dense(4, activation="tanh")(a)), norm(b)])
    model = Model(inputs=[a, b], outputs=Dense(2)(h), dtype="float64", seed=2)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(5)
    x = model.prepare_x(ops, [rng.normal(size=(6, 4)), rng.normal(size=(6, 4))])
    y = rng.normal(size=(6, 2))
    norm.set_weights([rng.uniform(0.5, 1.5, size=4), rng.normal(size=4)])
    moving = norm.get_state_arrays()["moving_mean"].copy()
    graph_gradient_check(model, x, y)
    assert not np.array_equal(norm.get_state_arrays()["moving_mean"], moving)  # both calls update them


def test_later_calls_see_a_generator_the_model_replaces():
    a = Input(shape=(5,))
    drop = Dropout(0.5, name="drop")
    model = Model(inputs=a, outputs=Add()([drop(a), drop(a)]), seed=0)
    view = model.engine.steps[1].call
    assert view is not drop and isinstance(view, Dropout)
    replacement = ops.rng(123)
    drop.rng = replacement
    assert view.rng is replacement
    assert view.rate == drop.rate and view.weights is drop.weights


def test_sequential_takes_an_input_first_as_keras_does():
    model = Sequential([Input(shape=(5,)), Dense(3, activation="relu"), Dense(2, activation="softmax")], seed=1)
    assert model.input_shape == (5,)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert model.built and model.get_weights()[0].shape == (5, 3)
    with pytest.raises(ValueError, match="before every layer"):
        model.add(Input(shape=(2,)))
    with pytest.raises(TypeError, match="functional API"):
        model.add(Add())


def test_input_dtype_sets_the_model_dtype():
    a = Input(shape=(3,), dtype="float64")
    model = Model(inputs=a, outputs=Dense(2)(a))
    assert model.dtype == "float64" and model.get_weights()[0].dtype == np.float64
    model.compile(optimizer="sgd", loss="mse")
    assert model.predict(np.ones((2, 3), dtype=np.float32)).dtype == np.float64
    b = Input(shape=(3,), dtype="float32")
    with pytest.raises(ValueError, match="one dtype"):
        Model(inputs=[a, b], outputs=Add()([Dense(2)(a), Dense(2)(b)]))
    with pytest.raises(ValueError, match="one dtype"):
        Model(inputs=b, outputs=Dense(2)(b), dtype="float64")


def test_the_gradient_hook_reports_each_layer_once_after_every_later_layer():
    """Data-parallel buckets rely on it: when a layer reports, the gradients of every layer after
    it in ``layers`` (the flat buffer's order) are complete, shared layers' sums included."""
    model = two_input_model()
    model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"])
    xa, xb, y_cls, y_reg = two_input_data(n=8)
    reported = []
    model.gradient_hook = lambda layer: reported.append(layer)
    model.backpropagate(model.forward(model.prepare_x(ops, [xa, xb]), training=True),
                        model.prepare_y(ops, [y_cls, y_reg]))
    assert len(reported) == len({id(layer) for layer in reported})
    order = {id(layer): i for i, layer in enumerate(model.layers)}
    assert {layer.name for layer in reported} >= {layer.name for layer in model.layers if layer.count_params()}
    positions = [order[id(layer)] for layer in reported]
    assert positions == sorted(positions, reverse=True)


def test_training_cannot_be_fixed_in_a_symbolic_call():
    with pytest.raises(ValueError, match="training= cannot be fixed"):
        Dropout(0.5)(Input(shape=(3,)), training=True)


def test_an_output_that_another_layer_reads_gets_both_gradients():
    a = Input(shape=(4,))
    h = Dense(3, activation="softmax", name="inner")(a)  # an output, and read by "outer"
    model = Model(inputs=a, outputs=[h, Dense(2, name="outer")(h)], dtype="float64", seed=3)
    model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"], loss_weights=[0.6, 1.0])
    assert model.heads[0].fused is None  # its gradient also comes from "outer": no logits shortcut
    rng = np.random.default_rng(8)
    x = rng.normal(size=(5, 4))
    y = model.prepare_y(ops, [np.eye(3)[rng.integers(0, 3, 5)], rng.normal(size=(5, 2))])
    graph_gradient_check(model, x, y)


def test_a_graph_chain_trains_through_the_whole_step_kernel_like_sequential():
    rng = np.random.default_rng(0)
    x = rng.random((512, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(512) % 10]
    a = Input(shape=(784,))
    graph = Model(inputs=a, outputs=Dense(10, activation="softmax")(Dense(512, activation="relu")(a)), seed=1)
    seq = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(10, activation="softmax")], seed=1)
    for model in (graph, seq):
        model.compile(optimizer=SGD(lr=0.01, momentum=0.9), loss="categorical_crossentropy", metrics=["accuracy"])
    seq.set_weights(graph.get_weights())
    h_seq = seq.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)
    if seq.step_path != "compiled":
        pytest.skip(f"no whole-step kernel here: {seq.step_path}")
    h_graph = graph.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)
    assert graph.step_path == "compiled"
    assert h_graph.history == h_seq.history
    for w_graph, w_seq in zip(graph.get_weights(), seq.get_weights()):
        np.testing.assert_array_equal(w_graph, w_seq)
