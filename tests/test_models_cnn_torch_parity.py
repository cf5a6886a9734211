"""A two-conv, two-pool CNN trained by tensornet and by PyTorch written by hand: the same
initial weights (kernels (kh, kw, in, out) transposed to PyTorch's (out, in, kh, kw)), the same
batches in the same order (``shuffle=False``), SGD with momentum on both sides.

Conv(6, 3, same, relu) - MaxPool(2) - Conv(8, 3, valid, relu) - MaxPool(2) - Flatten -
Dense(10, softmax) on (14, 14, 2) images, categorical cross-entropy. tensornet flattens in
(h, w, c) order, so the PyTorch network permutes its (n, c, h, w) maps to (n, h, w, c) before
flattening: then the Dense kernels are the same matrix.

Tolerances: float64 agrees to summation order (measured 4e-16 after 36 steps). In float32 each
product is rounded differently (im2col GEMM against PyTorch's own convolution); after 36
momentum steps the weights differ by at most 3e-7 (measured), checked at rtol 1e-5 / atol 2e-6
-- rounding, not an algorithmic difference: a wrong padding side, kernel orientation, pool
routing or momentum is off by more than 1e-2.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import numpy_backend  # noqa: E402,F401 (autouse fixture)
from tensornet.layers import Conv2D, Dense, Flatten, MaxPooling2D  # noqa: E402
from tensornet.models import Sequential  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402

N, BATCH, EPOCHS, LR, MOMENTUM = 96, 16, 6, 0.05, 0.9  # 36 steps


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 14, 14, 2)).astype(dtype)
    labels = (x.reshape(N, -1)[:, :40] @ rng.standard_normal((40, 10))).argmax(-1)
    return x, np.eye(10, dtype=dtype)[labels]


def tensornet_cnn(dtype):
    model = Sequential([Conv2D(6, 3, padding="same", activation="relu", input_shape=(14, 14, 2)), MaxPooling2D(),
                        Conv2D(8, 3, activation="relu"), MaxPooling2D(), Flatten(), Dense(10, activation="softmax")],
                       dtype=dtype, seed=3)
    model.compile(optimizer=SGD(lr=LR, momentum=MOMENTUM), loss="categorical_crossentropy")
    return model


class TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 6, 3, padding="same")
        self.conv2 = torch.nn.Conv2d(6, 8, 3)
        self.dense = torch.nn.Linear(32, 10)

    def forward(self, x):  # x: (n, c, h, w)
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.dense(x.permute(0, 2, 3, 1).flatten(1))  # (h, w, c) order, as Flatten


def torch_cnn(weights, dtype):
    net = TorchCNN().to(dtype)
    with torch.no_grad():
        for layer, (kernel, bias) in zip((net.conv1, net.conv2), (weights[0:2], weights[2:4])):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
            layer.bias.copy_(torch.from_numpy(bias))
        net.dense.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights[4].T)))
        net.dense.bias.copy_(torch.from_numpy(weights[5]))
    return net


def torch_weights(net):
    out = []
    for layer in (net.conv1, net.conv2):
        out += [layer.weight.detach().numpy().transpose(2, 3, 1, 0), layer.bias.detach().numpy()]
    return out + [net.dense.weight.detach().numpy().T, net.dense.bias.detach().numpy()]


def run_parity(dtype):
    x, y = data(dtype)
    model = tensornet_cnn(dtype)
    initial = model.get_weights()
    net = torch_cnn(initial, getattr(torch, dtype))
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y)
    losses = []
    for _ in range(EPOCHS):
        total = 0.0
        for start in range(0, N, BATCH):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt[start:start + BATCH]), yt[start:start + BATCH])
            loss.backward()
            opt.step()
            total += loss.item() * BATCH
        losses.append(total / N)
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    assert model.optimizer.iterations == EPOCHS * N // BATCH
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(model.get_weights(), initial))
    assert moved > 1e-2  # the comparison is not vacuous
    return model.get_weights(), torch_weights(net), history.history["loss"], losses


def test_cnn_parity_with_torch_float32():
    ours, theirs, our_losses, their_losses = run_parity("float32")
    for mine, ref in zip(ours, theirs):
        assert mine.dtype == np.float32 and mine.shape == ref.shape
        np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-5)
    assert our_losses[-1] < our_losses[0]


def test_cnn_parity_with_torch_float64():
    ours, theirs, our_losses, their_losses = run_parity("float64")
    for mine, ref in zip(ours, theirs):
        np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-13)
