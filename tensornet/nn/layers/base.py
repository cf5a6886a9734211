"""The layer protocol: build from an input shape, forward, backward into flat-buffer views."""
from __future__ import annotations

import math
import re

from ...backend import floatx, get_backend
from ...backend.config import check_float_dtype
from .symbolic import call_symbolic, is_symbolic

_name_counts: dict[str, int] = {}


def _snake(name: str) -> str:
    """Keras' snake case: ``BatchNormalization`` -> ``batch_normalization``, ``Conv2D`` -> ``conv2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """``dense``, ``dense_1``, ... as Keras numbers its layers."""
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def check_shape(shape, argument: str) -> tuple:
    """A per-example shape (no batch axis) of positive ints, or a ValueError naming ``argument``."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{argument} must be a tuple of positive ints; got {shape!r}") from None
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"{argument} must be a non-empty tuple of positive ints; got {shape!r}")
    return shape


class Layer:
    """Base class. Subclasses implement ``compute_output_shape``, ``forward`` and ``backward``;
    those with weights declare them in ``build`` with ``add_weight``.

    Weights live in a model's flat :class:`~tensornet.nn.parameters.ParameterStore`; a layer used
    on its own gets them from a private store at ``build``. ``forward`` returns a buffer the
    layer reuses on its next call of the same batch size: copy it to keep it.

    Called on a symbolic tensor (``Input(...)`` or another layer's symbolic output) a layer
    computes nothing: it records a node of a graph model (:mod:`.symbolic`). A layer with
    ``merges = True`` takes a list of inputs: ``forward`` gets a list of arrays, ``backward``
    returns a list of gradients and ``compute_output_shape`` gets a list of shapes.
    """

    #: Whether the layer combines a list of inputs (the merge layers) rather than one.
    merges = False

    def __init__(self, name=None, input_shape=None, input_dim=None, dtype=None, trainable=True):
        if input_dim is not None:
            input_shape = (input_dim,)
        self.input_shape = check_shape(input_shape, "input_shape") if input_shape is not None else None
        self.name = name or unique_name(_snake(type(self).__name__))
        self.dtype = check_float_dtype(dtype, "dtype") if dtype is not None else None
        if trainable is not True:
            raise ValueError(f"trainable={trainable!r}: freezing layers is not supported yet; every layer "
                             "trains (remove the argument)")
        self.trainable = True
        self.output_shape = None
        self.built = False
        self.needs_input_grad = True
        self.ops = None
        self.weights = {}
        self.gradients = {}
        self._specs = []
        self._workspaces = {}
        #: The nodes of graph models this layer was called in (one per call on symbolic tensors).
        self.inbound_nodes = []
        #: The input shape(s) its symbolic calls took (every call takes the same), or None.
        self.node_input_shapes = None

    # --------------------------------------------------------------- building
    def build(self, input_shape, ops=None, dtype=None):
        """Fix the input shape (without the batch axis), the backend and the dtype, and
        declare the weights. A model then attaches them to its flat store."""
        if self.merges:
            self.input_shape = [check_shape(shape, f"input shape {i} of layer {self.name!r}")
                                for i, shape in enumerate(input_shape)]
        else:
            self.input_shape = check_shape(input_shape, f"input shape of layer {self.name!r}")
        self.ops = ops or self.ops or get_backend()
        self.dtype = dtype or self.dtype or floatx()
        self._specs = []
        self.weights, self.gradients, self._workspaces = {}, {}, {}
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.build_weights(self.input_shape)
        self.built = True
        return self.output_shape

    def build_weights(self, input_shape):
        """Declare weights with ``add_weight`` (none by default)."""

    def add_weight(self, name, shape, initializer):
        self._specs.append((name, tuple(shape), initializer))

    def weight_specs(self):
        """(name, shape, dtype) of each weight, in ``get_weights`` order."""
        return [(name, shape, self.dtype) for name, shape, _ in self._specs]

    def initialize(self, rng):
        """Draw every weight from its initializer with ``rng`` into the attached views."""
        for name, shape, initializer in self._specs:
            self.weights[name][...] = initializer(self.ops, rng, shape, self.dtype)

    def attach_weight(self, name, weight_view, gradient_view):
        self.weights[name] = weight_view
        self.gradients[name] = gradient_view

    def count_params(self) -> int:
        """Trainable parameters (the weights this layer holds in the flat buffer)."""
        return sum(math.prod(shape) for _, shape, _ in self._specs)

    def count_non_trainable_params(self) -> int:
        """Non-trainable state counted as parameters (e.g. BatchNormalization's moving statistics)."""
        return 0

    def compute_output_shape(self, input_shape):
        return input_shape

    # --------------------------------------------------------------- computing
    @property
    def output_activation(self):
        """The activation applied last by this layer (for fusing it with the loss), or None."""
        return None

    @property
    def logits(self):
        """The pre-activation values of the last forward pass (layers with an activation)."""
        raise AttributeError(f"layer {self.name!r} has no output activation")

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy, through_activation=True):
        """Given dL/d(output), write dL/d(weights) into the gradient views and return
        dL/d(input) (None when ``needs_input_grad`` is False). With
        ``through_activation=False`` ``dy`` is already dL/d(logits)."""
        raise NotImplementedError

    def describe_step(self, store) -> dict:
        """This layer as a step of the plain description a backend's whole-step kernel reads
        (``op``, ``class``, ``name``; ``op`` is ``"layer"`` for a layer no kernel knows, and
        layers a kernel can run add their own fields). ``store`` is the model's
        :class:`~tensornet.nn.parameters.ParameterStore`."""
        return {"op": "layer", "class": type(self).__name__, "name": self.name}

    def workspace(self, tag, shape):
        """A buffer reused across calls with the same ``tag`` and shape."""
        key = (tag, tuple(shape))
        buffer = self._workspaces.get(key)
        if buffer is None:
            buffer = self._workspaces[key] = self.ops.lasting_zeros(shape, self.dtype)
        return buffer

    def release_workspaces(self):
        """Drop the reusable buffers (they are allocated again at the next call)."""
        self._workspaces = {}

    def __call__(self, x, training=None):
        """On symbolic tensors: record a node of a graph model and return its symbolic output
        (the model's ``fit`` / ``predict`` decide ``training``). On arrays: apply the layer to a
        batch (building it on first use), in training mode when ``training`` is true."""
        if is_symbolic(x):
            if training is not None:
                raise ValueError(f"layer {self.name!r}: training= cannot be fixed in a graph model's call; fit "
                                 "trains every layer and evaluate / predict run them in inference mode")
            return call_symbolic(self, x)
        training = bool(training)
        ops = self.ops or get_backend()
        xs = [ops.asarray(a) for a in x] if self.merges else [ops.asarray(x)]
        if not self.built:
            from ..parameters import ParameterStore

            shapes = [a.shape[1:] for a in xs]
            self.build(shapes if self.merges else shapes[0], ops=ops, dtype=self.dtype or floatx())
            ParameterStore(ops, [self])
            self.initialize(ops.rng(None))
        xs = [ops.asarray(a, dtype=self.dtype) for a in xs]
        return self.forward(xs if self.merges else xs[0], training=training)

    # --------------------------------------------------------------- weights, Keras' way
    def get_weights(self):
        """Host (NumPy) copies of this layer's weights in declaration order (Dense: kernel
        (in, out), then bias); empty before the layer is built."""
        return [self.ops.to_numpy(self.weights[name]).copy() for name, _, _ in self._specs if name in self.weights]

    def set_weights(self, weights):
        """Copy ``weights`` (a list like :meth:`get_weights` returns) into the layer's weights,
        in place (a model's flat buffer sees them); counts and shapes are checked."""
        weights = list(weights)
        if len(weights) != len(self._specs) or any(name not in self.weights for name, _, _ in self._specs):
            raise ValueError(f"layer {self.name!r} holds {len(self._specs)} weight array(s) "
                             f"({', '.join(name for name, _, _ in self._specs) or 'none'}); set_weights got "
                             f"{len(weights)}" + ("" if self.built else " (build the layer or its model first)"))
        for (name, shape, _), value in zip(self._specs, weights):
            value = self.ops.asarray(value if self.ops.is_array(value) else self.ops.to_numpy(value))
            if tuple(value.shape) != tuple(shape):
                raise ValueError(f"set_weights: {self.name}/{name} must have shape {tuple(shape)}; "
                                 f"got {tuple(value.shape)}")
            self.weights[name][...] = value

    # --------------------------------------------------------------- state beside the weights
    #: The layer's own random generator (Dropout's mask stream), or None. Saved with the model,
    #: and rolled back with it by the divergence guard.
    rng = None

    def get_state_arrays(self) -> dict:
        """Host copies of the layer's non-trainable state, by name: none here (BatchNormalization
        keeps its moving statistics). Saved with the model and restored by ``set_state_arrays``."""
        return {}

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        if self.input_shape is not None and not self.merges:  # (a merge's shapes come from its graph)
            config["input_shape"] = list(self.input_shape)
        return config

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"
