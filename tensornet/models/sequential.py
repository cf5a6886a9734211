"""Sequential: a stack of layers, the chain special case of :class:`~tensornet.models.Model`
(the same engine, compile, fit, evaluate, predict, saving)."""
from __future__ import annotations

from ..backend import get_backend
from ..nn import losses as losses_module
from ..nn.layers.base import Layer, check_shape
from ..nn.layers.input_layer import InputLayer
from ..nn.layers.symbolic import SymbolicTensor
from ..utils import next_model_seed
from .engine import Step
from .model import JIT_CHOICES, Model, check_jit_compile

__all__ = ["JIT_CHOICES", "Sequential", "check_jit_compile"]


class Sequential(Model):
    """A linear stack of layers: the chain x -> layer_1 -> ... -> layer_n.

    >>> model = Sequential([Dense(64, activation="relu", input_shape=(784,)), Dense(10, activation="softmax")])
    >>> model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])

    The model owns the backend (chosen at build/compile), a seeded generator (``seed``) used
    for initialisation, shuffling and dropout, and a :class:`ParameterStore` holding every
    weight in one flat buffer.
    """

    def __init__(self, layers=None, name=None, dtype=None, seed=None):
        super().__init__(name=name, dtype=dtype, seed=seed)
        self._declared_input_shape = None
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ structure
    def add(self, layer):
        """Append a layer (rebuilding, weights kept, when the model is already built). An
        ``Input(shape=...)`` first, as in Keras, gives the model its input shape."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer) or isinstance(layer, InputLayer):
            if self.layers:
                raise ValueError("Sequential.add: an Input must come before every layer")
            self._declared_input_shape = tuple(layer.shape if isinstance(layer, SymbolicTensor) else layer.input_shape)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer; got {type(layer).__name__}")
        if getattr(layer, "merges", False):
            raise TypeError(f"Sequential.add: {type(layer).__name__} layer {layer.name!r} merges several tensors; "
                            "build the model with the functional API, tensornet.models.Model(inputs, outputs)")
        if any(existing is layer for existing in self.layers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        if layer.input_shape is not None and self.layers:
            expected = self.layers[-1].output_shape
            if expected is not None and tuple(layer.input_shape) != tuple(expected):
                raise ValueError(f"layer {layer.name!r} declares input_shape {layer.input_shape} but the "
                                 f"previous layer outputs {expected}")
        was_built, weights = self.built, (self.get_weights() if self.built else None)
        declared = self._declared_input_shape
        if not self.layers and declared is not None:
            if layer.input_shape is not None and tuple(layer.input_shape) != declared:
                raise ValueError(f"layer {layer.name!r} declares input_shape {layer.input_shape} but the model's "
                                 f"Input has shape {declared}")
            layer.input_shape = declared
        self.layers.append(layer)
        if was_built:
            self.build(self.input_shape, keep=weights)
        elif self.layers[0].input_shape is not None:
            self._infer_shapes()

    def pop(self):
        """Remove the last layer."""
        if not self.layers:
            raise ValueError("pop() on an empty Sequential model")
        layer = self.layers.pop()
        if self.built:
            weights = self.get_weights()[:-len(layer.weight_specs())] if layer.weight_specs() else self.get_weights()
            self.built = False
            if self.layers:
                self.build(self.input_shape, keep=weights)
        return layer

    @property
    def input_shape(self):
        return self.layers[0].input_shape if self.layers else self._declared_input_shape

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.layers else None

    @property
    def _input_shapes(self):
        return [self.input_shape]

    @property
    def _output_shapes(self):
        return [self.output_shape]

    @property
    def output_names(self):
        """The name of the one output: the last layer's."""
        return [self.layers[-1].name] if self.layers else ["output"]

    def _infer_shapes(self):
        shape = self.layers[0].input_shape
        for layer in self.layers:
            layer.input_shape = shape
            shape = layer.compute_output_shape(shape)
            layer.output_shape = tuple(shape)

    def _chain(self):
        steps = [Step(layer, [i], i + 1) for i, layer in enumerate(self.layers)]
        return steps, [0], [len(self.layers)]

    def build(self, input_shape=None, backend=None, keep=None):
        """Build every layer for ``input_shape`` (per example), allocate the flat parameter and
        gradient buffers on the backend, and initialise the weights from the seeded generator
        (or restore ``keep``, a ``get_weights()`` list)."""
        if not self.layers:
            raise ValueError("cannot build an empty Sequential model: add layers first")
        if input_shape is None:
            input_shape = self.input_shape
        if input_shape is None:
            raise ValueError("the model's input shape is unknown: give the first layer input_shape=... "
                             "or call build(input_shape)")
        shape = check_shape(input_shape, "input_shape")
        self.ops = get_backend(backend) if backend is not None else (self.ops or get_backend())
        if self.rng is None:
            self.rng = self.ops.rng(self.seed if self.seed is not None else next_model_seed())
        for layer in self.layers:
            shape = layer.build(shape, ops=self.ops, dtype=self.dtype)
        return self._allocate(keep)

    def _make_heads(self):
        if self.layers and self.output_shape is None and self.input_shape is not None:
            self._infer_shapes()
        if self.output_shape is None:  # unknown until fit builds the model: made at build
            loss, metrics, _ = self._compile_args
            self.loss = losses_module.get(loss[0] if isinstance(loss, (list, tuple)) and len(loss) == 1 else loss)
            self.heads = []
            return
        super()._make_heads()
