"""Bad input fails early, in tensornet's own code, with a message that names the argument, says
what was expected and what was given."""
import numpy as np
import pytest

from helpers import numpy_backend  # noqa: F401 (autouse fixture)

from tensornet import activations, initializers, losses, optimizers
from tensornet.training.inputs import check_positive_int, check_verbose, prepare_inputs
from tensornet.layers import Dense, Dropout
from tensornet.models import Sequential
from tensornet.optimizers import SGD


def raised_in_tensornet(excinfo):
    """The exception was raised by tensornet's code, not by NumPy deep inside an operation."""
    frame = excinfo.traceback[-1]
    return "tensornet" in str(frame.path) and "numpy" not in str(frame.path)


def classifier(loss="categorical_crossentropy", classes=3):
    model = Sequential([Dense(4, activation="relu", input_shape=(5,)), Dense(classes, activation="softmax")],
                       seed=0)
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    return model


def data(n=10, classes=3):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 5)).astype(np.float32), np.eye(classes, dtype=np.float32)[
        rng.integers(0, classes, size=n)]


def expect(exc, pattern, fn, *args, **kwargs):
    with pytest.raises(exc, match=pattern) as excinfo:
        fn(*args, **kwargs)
    assert raised_in_tensornet(excinfo), excinfo.traceback[-1].path
    return str(excinfo.value)


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_wrong_feature_shape(method):
    model = classifier()
    x, y = data()
    bad = np.zeros((10, 4), np.float32)
    args = (bad,) if method == "predict" else (bad, y)
    msg = expect(ValueError, r"x must have shape \(batch, 5\) for this model; got \(10, 4\)",
                 getattr(model, method), *args, verbose=0)
    assert "x" in msg and "(batch, 5)" in msg and "(10, 4)" in msg


def test_wrong_target_shape():
    model = classifier()
    x, y = data()
    expect(ValueError, r"y must have shape \(batch, 3\) to match the model output; got \(10, 4\)",
           model.fit, x, np.zeros((10, 4)), verbose=0)
    msg = expect(ValueError, r"y must have shape \(batch, 3\).*got \(10,\).*to_categorical", model.fit, x,
                 np.zeros(10), verbose=0)
    assert "sparse_categorical_crossentropy" in msg


def test_length_mismatch():
    model = classifier()
    x, y = data()
    expect(ValueError, "x and y must hold the same number of examples; got 10 and 9", model.fit, x, y[:9],
           verbose=0)
    expect(ValueError, "same number of examples; got 9 and 10", model.evaluate, x[:9], y, verbose=0)


def test_sparse_labels_out_of_range():
    model = classifier("sparse_categorical_crossentropy")
    x, _ = data()
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 0, 1, -1])
    msg = expect(ValueError, r"y holds 2 label\(s\) outside \[0, 2\] for a 3-class output \(min -1, max 3\)",
                 model.fit, x, labels, verbose=0)
    assert "y" in msg
    expect(ValueError, "whole-number class labels", model.fit, x, np.full(10, 0.5), verbose=0)
    expect(ValueError, r"integer class labels of shape \(batch,\).*got shape \(10, 3\)", model.fit, x,
           np.zeros((10, 3)), verbose=0)


def test_one_hot_values_above_one():
    model = classifier()
    x, y = data()
    y = y.copy()
    y[0, 0] = 2.0
    expect(ValueError, r"y must hold targets in \[0, 1\] for categorical_crossentropy; got values from 0.0 to 2.0",
           model.fit, x, y, verbose=0)
    y[0, 0] = -0.5
    expect(ValueError, r"targets in \[0, 1\].*-0.5", model.evaluate, x, y, verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_in_x_and_y(bad):
    model = classifier()
    x, y = data()
    x_bad, y_bad = x.copy(), y.copy()
    x_bad[3, 2] = bad
    y_bad[4, 1] = bad
    expect(ValueError, "x contains NaN or infinite values", model.fit, x_bad, y, verbose=0)
    expect(ValueError, "y contains NaN or infinite values", model.fit, x, y_bad, verbose=0)
    expect(ValueError, "x contains NaN or infinite values", model.predict, x_bad)
    sparse = classifier("sparse_categorical_crossentropy")
    labels = np.zeros(10)
    labels[2] = bad
    expect(ValueError, "y contains NaN or infinite values", sparse.fit, x, labels, verbose=0)


def test_non_numeric_and_missing_inputs():
    model = classifier()
    x, y = data()
    expect(TypeError, "x must hold numbers.*got dtype", model.fit, np.array([["a"] * 5] * 10), y, verbose=0)
    expect(TypeError, "y is required; got None", model.fit, x, None, verbose=0)
    expect(TypeError, "x is required; got None", model.predict, None)
    expect(ValueError, "x must have a batch axis; got a scalar", model.predict, 3.0)


def test_unknown_names():
    expect(ValueError, r"unknown activation 'relux' for activation; expected one of: .*relu", Dense, 3,
           activation="relux")
    expect(ValueError, r"unknown loss 'msee' for loss; expected one of: .*mse", Sequential().compile,
           optimizer="sgd", loss="msee")
    expect(ValueError, r"unknown optimizer 'adamw2' for optimizer; expected one of: .*adam",
           Sequential().compile, optimizer="adamw2", loss="mse")
    expect(ValueError, r"unknown initializer 'xavier' for kernel_initializer; expected one of: .*glorot_uniform",
           Dense, 3, kernel_initializer="xavier")
    expect(ValueError, r"unknown initializer 'one' for bias_initializer", Dense, 3, bias_initializer="one")
    model = Sequential([Dense(3, input_shape=(2,))])
    expect(ValueError, r"unknown metric 'precision' in metrics; expected one of: .*accuracy", model.compile,
           optimizer="sgd", loss="mse", metrics=["precision"])
    expect(TypeError, "metrics must be a list", model.compile, optimizer="sgd", loss="mse", metrics="accuracy")
    expect(TypeError, r"loss must be a loss name \(str\) or a Loss instance; got int 3", losses.get, 3)
    expect(ValueError, "unknown activation", activations.get, "nope")
    expect(ValueError, "unknown initializer", initializers.get, "nope")
    expect(ValueError, "unknown optimizer", optimizers.get, "nope")


def test_out_of_range_hyperparameters():
    expect(ValueError, r"learning_rate must be >= 0.0; got -0.01", SGD, lr=-0.01)
    expect(ValueError, r"momentum must be >= 0.0; got -0.9", SGD, momentum=-0.9)
    expect(ValueError, r"decay must be >= 0.0; got -1e-06", SGD, decay=-1e-6)
    expect(ValueError, r"nesterov=True needs momentum > 0; got momentum=0", SGD, nesterov=True)
    expect(ValueError, r"Dropout rate must be a number in \[0, 1\); got 1.5", Dropout, 1.5)
    expect(ValueError, r"Dense units must be a positive int; got 0", Dense, 0)
    expect(ValueError, r"seed must be a non-negative int or None; got -1", Sequential, seed=-1)
    expect(ValueError, r"dtype must be one of float16, float32, float64; got 'int32'", Sequential, dtype="int32")
    expect(ValueError, r"input_shape must be a non-empty tuple of positive ints; got \(0,\)", Dense, 3,
           input_shape=(0,))


def test_fit_and_evaluate_before_compile():
    model = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
    x, y = data()
    msg = expect(RuntimeError, "compile", model.fit, x, y, verbose=0)
    assert "fit" in msg
    msg = expect(RuntimeError, "compile", model.evaluate, x, y, verbose=0)
    assert "evaluate" in msg
    expect(ValueError, "compile needs a loss", model.compile, optimizer="sgd")


def test_validation_data_malformed():
    model = classifier()
    x, y = data()
    expect(ValueError, r"validation_data must be a tuple \(x_val, y_val\); got tuple of length 1", model.fit, x, y,
           validation_data=(x,), verbose=0)
    expect(ValueError, r"validation_data must be a tuple \(x_val, y_val\); got ndarray", model.fit, x, y,
           validation_data=x, verbose=0)
    expect(ValueError, r"validation_data\[0\] must have shape \(batch, 5\) for this model; got \(10, 2\)",
           model.fit, x, y, validation_data=(x[:, :2], y), verbose=0)
    expect(ValueError, r"validation_data\[1\] must have shape \(batch, 3\)", model.fit, x, y,
           validation_data=(x, y[:, :2]), verbose=0)
    expect(ValueError, r"validation_data\[0\] and validation_data\[1\] must hold the same number of examples; "
           r"got 10 and 4", model.fit, x, y, validation_data=(x, y[:4]), verbose=0)
    expect(ValueError, r"validation_split must be a number in \[0, 1\); got 1.0", model.fit, x, y,
           validation_split=1.0, verbose=0)
    expect(ValueError, r"validation_split=0.95 leaves no examples for training or validation out of 10",
           model.fit, x, y, validation_split=0.95, verbose=0)


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_batch_size_zero(method):
    model = classifier()
    x, y = data()
    args = (x,) if method == "predict" else (x, y)
    expect(ValueError, "batch_size must be a positive int; got 0", getattr(model, method), *args, batch_size=0,
           verbose=0)
    expect(ValueError, r"batch_size must be a positive int; got 2.5", getattr(model, method), *args,
           batch_size=2.5, verbose=0)


def test_other_fit_arguments():
    model = classifier()
    x, y = data()
    expect(ValueError, "epochs must be a positive int; got 0", model.fit, x, y, epochs=0, verbose=0)
    expect(ValueError, "initial_epoch must be an int >= 0; got -1", model.fit, x, y, initial_epoch=-1, verbose=0)
    expect(TypeError, "shuffle must be True or False; got 'yes'", model.fit, x, y, shuffle="yes", verbose=0)
    expect(ValueError, "verbose must be 0, 1, 2 or 'auto'; got 5", model.fit, x, y, verbose=5)
    expect(TypeError, "callbacks must be Callback instances; got int", model.fit, x, y, callbacks=[1], verbose=0)
    assert check_positive_int(None, "n", allow_none=True) is None
    assert check_verbose("auto") == 1


def test_nothing_trained_when_input_is_rejected():
    model = classifier()
    x, y = data()
    before = model.get_weights()
    y_bad = y.copy()
    y_bad[-1, 0] = np.nan
    with pytest.raises(ValueError):
        model.fit(x, y_bad, verbose=0)
    assert model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_prepare_inputs_converts_lists_and_dtype():
    from tensornet.backend import get_backend

    ops = get_backend("numpy")
    out = prepare_inputs(ops, [[1, 2], [3, 4]], (2,), "float32")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1, 2], [3, 4]])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_check_finite_takes_large_finite_values_and_finds_every_bad_one(dtype):
    from tensornet.backend import get_backend
    from tensornet.training.inputs import check_finite

    ops = get_backend("numpy")
    big = np.full((37, 5), np.finfo(dtype).max, dtype)  # finite, but its sum is not
    check_finite(ops, big, "x")
    check_finite(ops, np.zeros((0, 3), dtype), "x")
    rng = np.random.default_rng(1)
    for bad in (np.nan, np.inf, -np.inf):
        for where in ((0, 0), (36, 4), (17, 2)):
            for base in (big, rng.standard_normal((37, 5)).astype(dtype)):
                x = base.copy()
                x[where] = bad
                with pytest.raises(ValueError, match="x contains NaN or infinite values"):
                    check_finite(ops, x, "x")
    mixed = rng.standard_normal((37, 5)).astype(dtype)
    mixed[3, 1], mixed[4, 1] = np.inf, -np.inf  # their sum is NaN: still caught
    with pytest.raises(ValueError):
        check_finite(ops, mixed, "x")
