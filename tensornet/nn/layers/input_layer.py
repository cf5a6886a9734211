"""Input: the entry point of a graph model, a symbolic tensor of a given per-example shape."""
from __future__ import annotations

from ...backend.config import check_float_dtype
from .base import Layer, check_shape
from .symbolic import Node, SymbolicTensor


class InputLayer(Layer):
    """The layer behind :func:`Input`: it holds the shape and passes the batch through
    (forward y = x, backward dx = dy); a graph model feeds it one of its input arrays."""

    def __init__(self, shape=None, name=None, dtype=None, input_shape=None, **kwargs):
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("Input needs shape=..., the shape of one example without the batch axis, "
                             "e.g. Input(shape=(784,))")
        super().__init__(name=name, input_shape=check_shape(shape, "Input shape"), dtype=dtype, **kwargs)

    def forward(self, x, training=False):
        return x

    def backward(self, dy, through_activation=True):
        return dy

    def get_config(self):
        config = {**super().get_config(), "shape": list(self.input_shape)}
        if self.dtype is not None:
            config["dtype"] = str(self.dtype)
        return config


def Input(shape=None, name=None, dtype=None, batch_size=None):  # noqa: N802 (Keras' name)
    """A symbolic input of per-example ``shape`` (no batch axis), as Keras' ``Input``:

    >>> a = Input(shape=(784,), name="image")
    >>> h = Dense(64, activation="relu")(a)

    ``dtype`` is the floating dtype the model computes in (a model whose Inputs declare one takes
    it; default: ``floatx()``); ``batch_size``
    is accepted for Keras' signature and must be None (batches take any size)."""
    if batch_size is not None:
        raise ValueError(f"Input(batch_size={batch_size!r}): tensornet models take batches of any size; "
                         "leave batch_size=None and pass batch_size to fit")
    if dtype is not None:
        dtype = check_float_dtype(dtype, "Input dtype")
    return input_tensor(InputLayer(shape=shape, name=name, dtype=dtype))


def input_tensor(layer):
    """The symbolic tensor an :class:`InputLayer` stands for (what :func:`Input` returns; a
    loaded graph model rebuilds its inputs from their layers with it)."""
    node = Node(layer, [], len(layer.inbound_nodes))
    node.output = SymbolicTensor(layer.input_shape, layer.dtype, node)
    layer.inbound_nodes.append(node)
    layer.node_input_shapes = tuple(layer.input_shape)
    return node.output
