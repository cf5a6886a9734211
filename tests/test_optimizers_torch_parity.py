"""SGD trajectory parity with torch.optim.SGD on the CPU.

The same MLP 20-16-16-4 (relu, relu, softmax) with categorical cross-entropy, the same initial
weights (copied from ``model.get_weights()``), the same batches in the same order
(``shuffle=False``) and the same hyperparameters: with a constant learning rate tensornet's
Keras-2 SGD (v = mu v - lr g, w += v) is torch's (b = mu b + g, w -= lr b) with b = -v / lr,
so the weights must agree after every one of 48 steps.

Tolerances: in float64 the two computations differ only by summation order, so they agree to
~1e-12. In float32 each step's products are rounded differently (BLAS blocking, the order of
the softmax sums); 48 steps of momentum 0.9 accumulate those ~1e-7 relative differences, which
stay below rtol 1e-5 / atol 1e-6 (measured: at most 4e-7 absolute, 7e-7 relative to the largest
weight) -- float32 rounding, not an algorithmic difference: a wrong momentum, weight decay or
Nesterov term is off by more than 1e-3.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import numpy_backend  # noqa: E402,F401 (autouse fixture)
from tensornet.layers import Dense  # noqa: E402
from tensornet.models import Sequential  # noqa: E402
from tensornet.optimizers import SGD  # noqa: E402



@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny matrices: torch's thread pool only fights NumPy's BLAS for the cores (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


N, BATCH, EPOCHS = 96, 8, 4  # 12 steps per epoch, 48 steps
CASES = {
    "plain": dict(lr=0.05),
    "momentum": dict(lr=0.05, momentum=0.9),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
    "momentum+weight_decay": dict(lr=0.05, momentum=0.9, weight_decay=1e-3),
    "nesterov+weight_decay": dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=1e-2),
}


def data(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 20)).astype(dtype)
    labels = (x[:, :4] @ rng.standard_normal((4, 4)) + 0.3 * rng.standard_normal((N, 4))).argmax(-1)
    return x, np.eye(4, dtype=dtype)[labels]


def tensornet_model(dtype, kwargs):
    model = Sequential([Dense(16, activation="relu", input_shape=(20,)), Dense(16, activation="relu"),
                        Dense(4, activation="softmax")], dtype=dtype, seed=7)
    model.compile(optimizer=SGD(**kwargs), loss="categorical_crossentropy")
    return model


def torch_model(weights, dtype):
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                              torch.nn.ReLU(), torch.nn.Linear(16, 4)).to(dtype)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(torch.from_numpy(weights[2 * i].T.copy()))  # kernel (in, out) -> (out, in)
            lin.bias.copy_(torch.from_numpy(weights[2 * i + 1].copy()))
    return net, linears


def torch_weights(linears):
    out = []
    for lin in linears:
        out += [lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()]
    return out


def run_parity(case, dtype):
    kwargs = CASES[case]
    torch.manual_seed(0)
    x, y = data(dtype)
    model = tensornet_model(dtype, kwargs)
    net, linears = torch_model(model.get_weights(), getattr(torch, dtype))
    opt = torch.optim.SGD(net.parameters(), lr=kwargs["lr"], momentum=kwargs.get("momentum", 0.0),
                          weight_decay=kwargs.get("weight_decay", 0.0), nesterov=kwargs.get("nesterov", False))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    worst = 0.0
    torch_losses = []
    for epoch in range(EPOCHS):
        epoch_loss = 0.0
        for start in range(0, N, BATCH):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt[start:start + BATCH]), yt[start:start + BATCH])
            loss.backward()
            opt.step()
            epoch_loss += loss.item() * BATCH
        torch_losses.append(epoch_loss / N)
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    assert model.optimizer.iterations == EPOCHS * N // BATCH == 48
    for ours, theirs in zip(model.get_weights(), torch_weights(linears)):
        worst = max(worst, float(np.max(np.abs(ours.astype(np.float64) - theirs))))
    return model, torch_weights(linears), history, torch_losses, worst


@pytest.mark.parametrize("case", list(CASES))
def test_sgd_parity_with_torch_float32(case):
    model, theirs, history, torch_losses, worst = run_parity(case, "float32")
    for ours, ref in zip(model.get_weights(), theirs):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6, err_msg=f"{case} (max abs diff {worst:.2e})")
    # the per-epoch training loss (mean over the epoch's batches, before each step) agrees too
    np.testing.assert_allclose(history.history["loss"], torch_losses, rtol=1e-5)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("case", list(CASES))
def test_sgd_parity_with_torch_float64(case):
    model, theirs, history, torch_losses, worst = run_parity(case, "float64")
    for ours, ref in zip(model.get_weights(), theirs):
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14, err_msg=f"{case} (max abs diff {worst:.2e})")
    np.testing.assert_allclose(history.history["loss"], torch_losses, rtol=1e-12)


def test_weights_actually_moved():
    """Guard against a vacuous parity: training changes the weights by far more than the tolerance."""
    model = tensornet_model("float32", CASES["momentum"])
    before = model.get_weights()
    x, y = data("float32")
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(model.get_weights(), before))
    assert moved > 1e-2
