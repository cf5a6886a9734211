"""Conv2D: output shapes against TensorFlow's rule, forward against a direct loop-over-pixels
reference and against PyTorch's conv2d, backward (inputs, kernel, bias) against central finite
differences in float64 -- strides, "same" padding with odd and even kernels, dilation,
activations -- and the errors naming the layer and the shapes."""
import numpy as np
import pytest

from conv_references import check_layer_gradients, np_conv2d
from helpers import away_from_zero, numpy_backend, numpy_ops  # noqa: F401 (autouse fixture)

from tensornet.layers import Conv2D, Dense, Flatten
from tensornet.models import Sequential

ops = numpy_ops()

# (kernel_size, strides, padding, dilation_rate, input (h, w, c))
CASES = [
    ((3, 3), (1, 1), "valid", (1, 1), (7, 6, 2)),
    ((3, 3), (1, 1), "same", (1, 1), (7, 6, 2)),
    ((2, 2), (1, 1), "same", (1, 1), (5, 6, 3)),      # even kernel: the extra pixel bottom / right
    ((4, 3), (1, 1), "same", (1, 1), (6, 5, 1)),
    ((3, 3), (2, 2), "valid", (1, 1), (8, 7, 2)),
    ((3, 2), (2, 3), "same", (1, 1), (7, 8, 2)),      # strides that do not divide the size
    ((2, 2), (2, 2), "same", (1, 1), (5, 5, 2)),
    ((3, 3), (1, 1), "valid", (2, 2), (9, 8, 2)),     # dilation
    ((2, 3), (1, 1), "same", (2, 1), (6, 7, 2)),
    ((3, 3), (2, 1), "same", (1, 2), (7, 7, 2)),
    ((1, 1), (1, 1), "valid", (1, 1), (4, 5, 3)),     # 1x1: im2col is the input itself
]


def make_conv(filters, kernel_size, strides, padding, dilation, in_shape, activation=None, use_bias=True,
              n=3, seed=0):
    rng = np.random.default_rng(seed)
    layer = Conv2D(filters, kernel_size, strides=strides, padding=padding, dilation_rate=dilation,
                   activation=activation, use_bias=use_bias, dtype="float64")
    x = away_from_zero(rng, (n, *in_shape), 0.1, 1.5)
    layer(x)  # builds
    layer.weights["kernel"][...] = rng.uniform(-1, 1, size=layer.weights["kernel"].shape)
    if use_bias:
        layer.weights["bias"][...] = rng.uniform(-0.5, 0.5, size=filters)
    return layer, x


@pytest.mark.parametrize("kernel_size,strides,padding,dilation,in_shape", CASES)
def test_forward_matches_the_direct_reference(kernel_size, strides, padding, dilation, in_shape):
    layer, x = make_conv(4, kernel_size, strides, padding, dilation, in_shape)
    y = layer(x)
    expected = np_conv2d(x, layer.weights["kernel"], layer.weights["bias"], strides, padding, dilation)
    assert y.shape == expected.shape and y.shape[1:] == layer.output_shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel_size,strides,padding,dilation,in_shape", CASES)
def test_gradients_match_finite_differences(kernel_size, strides, padding, dilation, in_shape):
    layer, x = make_conv(3, kernel_size, strides, padding, dilation, in_shape)
    check_layer_gradients(layer, x, seed=1)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_activations_and_bias_gradients(activation, use_bias):
    layer, x = make_conv(3, (3, 3), (1, 1), "same", (1, 1), (5, 5, 2), activation=activation, use_bias=use_bias)
    z = np_conv2d(x, layer.weights["kernel"], layer.weights["bias"] if use_bias else None, padding="same")
    expected = {"relu": np.maximum(z, 0), "tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z))}[activation]
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)
    if activation == "relu":
        assert np.min(np.abs(z)) > 1e-5  # clear of the kink by far more than the FD step
    check_layer_gradients(layer, x, seed=2)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("kernel_size,strides,padding,dilation,in_shape",
                         [case for case in CASES if case[1] == (1, 1) or case[2] == "valid"])
def test_forward_matches_pytorch(kernel_size, strides, padding, dilation, in_shape):
    """PyTorch's layout is (n, c, h, w) with weights (f, c, kh, kw); its "same" (stride 1 only)
    also puts the odd padding pixel at the bottom / right."""
    torch = pytest.importorskip("torch")
    layer, x = make_conv(4, kernel_size, strides, padding, dilation, in_shape)
    weight = torch.from_numpy(np.ascontiguousarray(layer.weights["kernel"].transpose(3, 2, 0, 1)))
    expected = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2)), weight,
                                          torch.from_numpy(layer.weights["bias"].copy()), stride=strides,
                                          padding=padding, dilation=dilation).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32():
    layer = Conv2D(5, 3, padding="same", input_shape=(6, 6, 2))
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 2)).astype("float32")
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == (4, 6, 6, 5)
    layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and layer.gradients["kernel"].dtype == np.float32
    assert layer.weights["kernel"].shape == (3, 3, 2, 5)  # (kh, kw, in, out) as Keras


def test_a_conv_net_gradient_through_flatten():
    """Conv -> Conv (stride 2, same) -> Flatten -> Dense: the whole model against finite differences."""
    from helpers import check_gradient, model_analytic_gradient, model_batch_loss

    rng = np.random.default_rng(3)
    model = Sequential([Conv2D(3, 3, activation="tanh", input_shape=(6, 5, 2)),
                        Conv2D(2, 2, strides=2, padding="same", activation="tanh"), Flatten(),
                        Dense(3, activation="softmax")], dtype="float64", seed=0)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = rng.standard_normal((4, 6, 5, 2))
    y = np.eye(3)[rng.integers(0, 3, 4)]
    params, _ = model.store.groups["float64"]
    analytic = model_analytic_gradient(model, x, y)
    check_gradient(lambda: model_batch_loss(model, x, y), params, analytic, what="conv model")


def test_keras_defaults_and_config():
    layer = Conv2D(8, 3)
    assert (layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate) == ((3, 3), (1, 1), "valid", (1, 1))
    assert layer.name.startswith("conv2d") and layer.activation.name == "linear" and layer.use_bias
    config = Conv2D(4, (2, 3), strides=2, padding="SAME", dilation_rate=(1, 2), activation="relu").get_config()
    assert config["kernel_size"] == [2, 3] and config["strides"] == [2, 2] and config["padding"] == "same"
    assert config["dilation_rate"] == [1, 2] and config["data_format"] == "channels_last"
    assert Conv2D(4, 3, input_shape=(5, 5, 1)).build((5, 5, 1), ops=ops) == (3, 3, 4)
    layer = Conv2D(4, 3, use_bias=False)
    layer.build((5, 5, 2), ops=ops)
    assert layer.weight_specs() == [("kernel", (3, 3, 2, 4), "float32")] and layer.count_params() == 72


def test_errors_name_the_layer_and_the_shapes():
    with pytest.raises(ValueError, match=r"Conv2D layer 'c1' expects inputs of shape \(batch, height, width, "
                                         r"channels\); got per-example shape \(784,\)"):
        Sequential([Conv2D(4, 3, name="c1", input_shape=(784,))])
    with pytest.raises(ValueError, match=r"Conv2D layer 'c2': kernel 5x5 is larger than its input 3x4 .*\(3, 4, 1\)"):
        Conv2D(4, 5, name="c2").build((3, 4, 1), ops=ops)
    with pytest.raises(ValueError, match=r"dilated to 5x5"):
        Conv2D(4, 3, dilation_rate=2).build((4, 4, 1), ops=ops)
    assert Conv2D(4, 5, padding="same").build((3, 4, 1), ops=ops) == (3, 4, 4)  # "same" always fits
    with pytest.raises(ValueError, match="channels_last"):
        Conv2D(4, 3, data_format="channels_first")
    for argument, bad in (("kernel_size", 0), ("kernel_size", (3,)), ("strides", (1, 0)), ("dilation_rate", 1.5)):
        with pytest.raises(ValueError, match=argument):
            Conv2D(4, **{"kernel_size": 3, argument: bad})
    with pytest.raises(ValueError, match="padding"):
        Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="filters"):
        Conv2D(0, 3)
    model = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1))])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 5, 5, 1\)"):
        model.predict(np.zeros((2, 5, 5)))
