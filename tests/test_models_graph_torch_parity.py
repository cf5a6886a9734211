"""A graph model trained by tensornet and by PyTorch written by hand: the same weights, the same
batches, the same loss, agree after tens of SGD-momentum steps.

The model: inputs a (10 features) and b (7 features); b goes through Dense(10, tanh) "lift";
one Dense(8, tanh) "shared" is called on a and on lift(b) (one weight set, gradient summed over
both calls); s = shared(a) + shared(lift(b)) (Add); the class head is
Dense(4, softmax)(Concatenate([shared(a), s])) with categorical cross-entropy, the regression
head Dense(2)(s) with mean squared error; total loss = 1.0 * cls + 0.3 * reg. SGD lr 0.05,
momentum 0.9: tensornet's Keras-2 rule (v = mu v - lr g, w += v) is torch's (b = mu b + g,
w -= lr b). Batches are taken in order (``shuffle=False``), the last one partial.

Tolerances: float64 agrees to summation order (1e-10); in float32 each step's products round
differently (BLAS blocking, the softmax sums), and 40 momentum steps accumulate those ~1e-7
relative differences to under rtol 1e-5 / atol 2e-6 (measured: at most 2e-7 absolute, on
weights that moved by up to 0.9), while a missing or doubled
shared-layer gradient, a wrong loss weight or a dropped path is off by far more.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import numpy_backend  # noqa: E402,F401 (autouse fixture)
from tensornet.layers import Add, Concatenate, Dense, Input  # noqa: E402
from tensornet.models import Model  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402

N, BATCH, EPOCHS = 76, 8, 4  # 10 steps per epoch (the last of 4 examples): 40 steps
LOSS_WEIGHTS = (1.0, 0.3)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data(dtype):
    rng = np.random.default_rng(0)
    xa = rng.standard_normal((N, 10)).astype(dtype)
    xb = rng.standard_normal((N, 7)).astype(dtype)
    labels = (xa[:, :4] + xb[:, :4]).argmax(-1)
    y_reg = (0.5 * xa[:, :2] - xb[:, 2:4]).astype(dtype)
    return xa, xb, np.eye(4, dtype=dtype)[labels], y_reg


def tensornet_model(dtype):
    a, b = Input(shape=(10,), name="a"), Input(shape=(7,), name="b")
    shared = Dense(8, activation="tanh", name="shared")
    ha = shared(a)
    hb = shared(Dense(10, activation="tanh", name="lift")(b))
    s = Add(name="sum")([ha, hb])
    cls = Dense(4, activation="softmax", name="cls")(Concatenate(name="join")([ha, s]))
    reg = Dense(2, name="reg")(s)
    model = Model(inputs=[a, b], outputs=[cls, reg], dtype=dtype, seed=9)
    model.compile(optimizer=SGD(lr=0.05, momentum=0.9), loss=["categorical_crossentropy", "mse"],
                  loss_weights=list(LOSS_WEIGHTS))
    return model


class TorchGraph(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.shared, self.lift = torch.nn.Linear(10, 8), torch.nn.Linear(7, 10)
        self.cls, self.reg = torch.nn.Linear(16, 4), torch.nn.Linear(8, 2)

    def forward(self, a, b):
        ha = torch.tanh(self.shared(a))
        hb = torch.tanh(self.shared(torch.tanh(self.lift(b))))
        s = ha + hb
        return self.cls(torch.cat([ha, s], dim=1)), self.reg(s)


def linears_in_store_order(net, model):
    by_name = {"shared": net.shared, "lift": net.lift, "cls": net.cls, "reg": net.reg}
    return [by_name[layer.name] for layer in model.layers if layer.count_params()]


def run(dtype):
    xa, xb, y_cls, y_reg = data(dtype)
    model = tensornet_model(dtype)
    net = TorchGraph().to(getattr(torch, dtype))
    linears = linears_in_store_order(net, model)
    weights = model.get_weights()
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(torch.from_numpy(weights[2 * i].T.copy()))
            lin.bias.copy_(torch.from_numpy(weights[2 * i + 1].copy()))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(EPOCHS):
        for start in range(0, N, BATCH):
            rows = slice(start, start + BATCH)
            logits, reg = net(torch.from_numpy(xa[rows]), torch.from_numpy(xb[rows]))
            target = torch.from_numpy(y_cls[rows])
            cls_loss = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
            reg_loss = ((reg - torch.from_numpy(y_reg[rows])) ** 2).mean()
            loss = LOSS_WEIGHTS[0] * cls_loss + LOSS_WEIGHTS[1] * reg_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    history = model.fit([xa, xb], [y_cls, y_reg], batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    expected = []
    for lin in linears:
        expected += [lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()]
    return model, weights, expected, history


@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-10, 1e-12), ("float32", 1e-5, 2e-6)])
def test_graph_model_trains_like_pytorch(dtype, rtol, atol):
    model, initial, expected, history = run(dtype)
    assert model.optimizer.iterations == EPOCHS * -(-N // BATCH)
    final = model.get_weights()
    for start, got, want in zip(initial, final, expected):
        assert got.dtype == np.dtype(dtype)
        assert np.max(np.abs(got - start)) > 1e-2  # the weights moved
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert history.history["loss"][-1] < history.history["loss"][0]
