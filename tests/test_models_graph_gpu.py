"""Graph models on the CuPy backend: the same two-input, shared-layer, two-output model trains
on NumPy and on CuPy from the same initial weights along the same trajectory, and predicts the
same outputs (float32 rounding apart). Marked ``gpu``: skipped without CuPy and a device."""
import numpy as np
import pytest

from tensornet.layers import Add, Concatenate, Dense, Input
from tensornet.models import Model
from tensornet.optimizers import SGD


def _model(backend, seed=4):
    a, b = Input(shape=(12,), name="a"), Input(shape=(5,), name="b")
    shared = Dense(16, activation="relu", name="shared")
    ha, hb = shared(a), shared(Dense(12, activation="tanh", name="lift")(b))
    s = Add()([ha, hb])
    cls = Dense(4, activation="softmax", name="cls")(Concatenate()([ha, s]))
    reg = Dense(2, name="reg")(s)
    model = Model(inputs=[a, b], outputs=[cls, reg], seed=seed)
    model.compile(optimizer=SGD(lr=0.05, momentum=0.9), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics={"cls": ["accuracy"]}, backend=backend)
    return model


def _data(n=640, seed=2):
    rng = np.random.default_rng(seed)
    xa, xb = rng.normal(size=(n, 12)).astype("float32"), rng.normal(size=(n, 5)).astype("float32")
    return [xa, xb], [(xa[:, :4] + xb[:, :4]).argmax(axis=1), xa[:, :2] - xb[:, 2:4]]


@pytest.mark.gpu
def test_a_graph_model_trains_alike_on_numpy_and_cupy():
    import cupy

    x, y = _data()
    cpu, gpu = _model("numpy"), _model("cupy")
    assert isinstance(gpu.store.flat()[0], cupy.ndarray)
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_array_equal(a, b)
    h_cpu = cpu.fit(x, y, batch_size=32, epochs=2, verbose=0)
    h_gpu = gpu.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert list(h_gpu.history) == list(h_cpu.history) == ["loss", "cls_loss", "reg_loss", "cls_accuracy"]
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5)
    assert h_gpu.history["loss"][0] == pytest.approx(h_cpu.history["loss"][0], rel=1e-5)
    on_device = gpu.predict([cupy.asarray(x[0]), cupy.asarray(x[1])])
    assert all(isinstance(out, cupy.ndarray) for out in on_device)
    for got, want in zip(gpu.predict(x), cpu.predict(x)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
