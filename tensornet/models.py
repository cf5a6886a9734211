"""Sequential: a stack of layers with Keras' compile / fit / evaluate / predict face."""
from __future__ import annotations

import os

from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .backend import floatx, get_backend
from .backend.config import check_float_dtype
from .compiled_step import check_jit_compile
from .layers.base import Layer, check_shape, unique_name
from .parameters import ParameterStore
from .trainer import Trainer
from .utils import next_model_seed


class Sequential:
    """A linear stack of layers.

    >>> model = Sequential([Dense(64, activation="relu", input_shape=(784,)), Dense(10, activation="softmax")])
    >>> model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])

    The model owns the backend (chosen at build/compile), a seeded generator (``seed``) used
    for initialisation, shuffling and dropout, and a :class:`ParameterStore` holding every
    weight in one flat buffer.
    """

    def __init__(self, layers=None, name=None, dtype=None, seed=None):
        self.name = name or unique_name("sequential")
        self.layers = []
        self.dtype = check_float_dtype(dtype, "dtype") if dtype is not None else floatx()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None; got {seed!r}")
        self.seed = seed
        self.ops = None
        self.rng = None
        self.store = None
        self.optimizer = self.loss = None
        self.metrics = []
        self.compiled = False
        self.built = False
        self.fused_output = None
        #: ``compile(jit_compile=...)``: whether ``fit`` may train through a compiled step.
        self.jit_compile = "auto"
        self.stop_training = False
        self.history = None
        #: Epochs trained so far (what ``save`` records and ``fit(initial_epoch=...)`` resumes from).
        self.epochs_completed = 0
        #: Set by loading a checkpoint taken inside an epoch: where ``fit`` continues that epoch.
        self.resume_point = None
        self._trainer = Trainer(self)
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ structure
    def add(self, layer):
        """Append a layer (rebuilding, weights kept, when the model is already built)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer; got {type(layer).__name__}")
        if any(existing is layer for existing in self.layers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        if layer.input_shape is not None and self.layers:
            expected = self.layers[-1].output_shape
            if expected is not None and tuple(layer.input_shape) != tuple(expected):
                raise ValueError(f"layer {layer.name!r} declares input_shape {layer.input_shape} but the "
                                 f"previous layer outputs {expected}")
        was_built, weights = self.built, (self.get_weights() if self.built else None)
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
        return self.layers[0].input_shape if self.layers else None

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.layers else None

    def _infer_shapes(self):
        shape = self.layers[0].input_shape
        for layer in self.layers:
            layer.input_shape = shape
            shape = layer.compute_output_shape(shape)
            layer.output_shape = tuple(shape)

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
        for i, layer in enumerate(self.layers):
            shape = layer.build(shape, ops=self.ops, dtype=self.dtype)
            layer.needs_input_grad = any(prev.count_params() for prev in self.layers[:i])
            if hasattr(layer, "rng") and getattr(layer, "seed", None) is None:
                layer.rng = self.rng
        self.store = ParameterStore(self.ops, self.layers)
        kept = 0 if keep is None else len(keep)
        done = 0
        for layer in self.layers:  # layers ``keep`` does not cover (added since) start fresh
            if done >= kept:
                layer.initialize(self.rng)
            done += len(layer.weight_specs())
        self.built = True
        if keep is not None:  # the layers it covers come first, in get_weights order
            keep = list(keep)
            self._assign_weights(list(self.store.views())[:len(keep)], keep)
        if self.compiled:
            self._finish_compile()
        return self

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, backend=None, jit_compile="auto"):
        """Choose the optimizer, loss and metrics (names or objects), and optionally the
        backend (``"numpy"``, ``"cupy"``, ``"auto"``; default: the current one).

        ``jit_compile``: ``"auto"`` (default) trains through one compiled call per step where
        the model and backend allow it (:mod:`tensornet.compiled_step`: Dense layers, relu,
        softmax cross-entropy, SGD, on the CPU with Numba and MKL), else layer by layer; ``True``
        requires it (``fit`` says why not); ``False`` always trains layer by layer."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'")
        jit_compile = check_jit_compile(jit_compile)
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list of metric names; got {type(metrics).__name__}")
        self._metric_ids = list(metrics or [])
        target = get_backend(backend) if backend is not None else (self.ops or get_backend())
        if self.built and target is not self.ops:
            weights = self.get_weights()
            self.ops = target
            self.build(self.input_shape, keep=weights)
        self.ops = target
        self.jit_compile = jit_compile
        self.compiled = True
        if self.built:
            self._finish_compile()
        elif self.input_shape is not None:
            self.build()
        return self

    def _finish_compile(self):
        last = self.layers[-1]
        output_size = self.output_shape[-1]
        self.metrics = [metrics_module.get(m, self.loss, output_size) for m in self._metric_ids]
        self.fused_output = self.loss.fused_activation(last.output_activation)
        self.optimizer.build(self.store)

    def require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"the model must be compiled before {what}(): call model.compile(optimizer=..., "
                               "loss=...) first")

    # ------------------------------------------------------------------ computing
    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dy, through_activation=True):
        for layer in reversed(self.layers):
            dy = layer.backward(dy, through_activation=through_activation)
            through_activation = True
            if dy is None:
                break
        return dy

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0, check_finite=True):
        """Train for ``epochs`` (from ``initial_epoch``) on shuffled mini-batches; returns a History.

        With ``check_finite`` (the default) a NaN or infinite loss or gradient stops training
        with :class:`~tensornet.errors.DivergenceError`, the model put back to its state after
        the last finite step (see :mod:`tensornet.divergence`). A model loaded from a checkpoint
        taken inside an epoch continues that epoch when ``initial_epoch`` is its
        ``epochs_completed``."""
        return self._trainer.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                                 callbacks=callbacks, validation_split=validation_split,
                                 validation_data=validation_data, shuffle=shuffle, initial_epoch=initial_epoch,
                                 check_finite=check_finite)

    @property
    def step_path(self):
        """Which training step the last ``fit`` ran: ``"compiled"`` (one backend call per step,
        see ``compile(jit_compile=...)``), ``"layered (<why not compiled>)"``, or None before any."""
        return self._trainer.step_path

    def evaluate(self, x=None, y=None, batch_size=None, verbose=1):
        """[loss, *metrics] on (x, y) (a scalar loss when there are no metrics)."""
        return self._trainer.evaluate(x, y, batch_size=batch_size, verbose=verbose)

    def predict(self, x, batch_size=None, verbose=0):
        """Model outputs for ``x``, computed in batches."""
        return self._trainer.predict(x, batch_size=batch_size, verbose=verbose)

    def __call__(self, x):
        return self.predict(x)

    # ------------------------------------------------------------------ weights
    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self):
        """Copies of every weight as NumPy arrays, in layer order (Dense: kernel (in, out), bias)."""
        self._require_built("get_weights")
        return [self.ops.to_numpy(w).copy() for _, _, w, _ in self.store.views()]

    def set_weights(self, weights):
        """Set every weight from a list like ``get_weights()`` returns (shapes must match)."""
        self._require_built("set_weights")
        views = list(self.store.views())
        weights = list(weights)
        if len(weights) != len(views):
            raise ValueError(f"set_weights expects {len(views)} arrays; got {len(weights)}")
        self._assign_weights(views, weights)

    def _assign_weights(self, views, weights):
        """Copy each array of ``weights`` into the matching store view (shapes checked)."""
        for (layer, name, view, _), value in zip(views, weights):
            value = self.ops.asarray(self.ops.to_numpy(value) if not self.ops.is_array(value) else value)
            if tuple(value.shape) != tuple(view.shape):
                raise ValueError(f"set_weights: {layer.name}/{name} must have shape {tuple(view.shape)}; "
                                 f"got {tuple(value.shape)}")
            view[...] = value

    # ------------------------------------------------------------------ saving
    def save(self, path, overwrite=True, include_optimizer=True):
        """Write the model to ``path`` (architecture, weights, optimizer state and step, schedule,
        random-generator states, epochs completed, history): one ``.npz`` file with a JSON
        header and a checksum, written atomically; nothing in it executes on load. See
        :mod:`tensornet.saving` and :func:`load_model`."""
        from . import saving

        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path!r} exists and overwrite=False")
        saving.save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        """Write only the weights (same file format as ``save``)."""
        from . import saving

        saving.save_weights(self, path)

    def load_weights(self, path):
        """Set the weights from a file written by ``save`` or ``save_weights``."""
        from . import saving

        saving.load_weights(self, path)

    def _require_built(self, what):
        if not self.built:
            raise RuntimeError(f"{what}() needs a built model: give the first layer input_shape=... or "
                               "call build(input_shape) or fit first")

    def summary(self, print_fn=print, line_length=65):
        """Print layers, output shapes and parameter counts, as Keras does."""
        if not self.built and self.input_shape is not None:
            self._infer_shapes()
        labels = [f"{layer.name} ({type(layer).__name__})" for layer in self.layers]
        first = max([29, *(len(label) + 2 for label in labels)])  # long names widen, never shift
        line_length = max(line_length, first + 36)
        rule, widths = "_" * line_length, (first, 26, 10)
        lines = [f'Model: "{self.name}"', rule,
                 _columns(("Layer (type)", "Output Shape", "Param #"), widths), "=" * line_length]
        trainable = non_trainable = 0
        for i, layer in enumerate(self.layers):
            shape = "(None, " + ", ".join(map(str, layer.output_shape)) + ")" if layer.output_shape else "?"
            params = layer.count_params() if layer.built else _declared_params(layer)
            fixed = layer.count_non_trainable_params()
            trainable, non_trainable = trainable + params, non_trainable + fixed
            lines.append(_columns((labels[i], shape, f"{params + fixed}"), widths))
            lines.append("=" * line_length if i == len(self.layers) - 1 else rule)
        lines += [f"Total params: {trainable + non_trainable:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {non_trainable:,}", rule]
        for line in lines:
            print_fn(line)


def _declared_params(layer):
    if layer.input_shape is None:
        return 0
    probe = type(layer).__new__(type(layer))
    probe.__dict__.update(layer.__dict__)
    probe._specs = []
    probe.build_weights(layer.input_shape)
    return probe.count_params()


def _columns(values, widths):
    return "".join(" " + str(v).ljust(w) for v, w in zip(values, widths)).rstrip()


def load_model(path, custom_objects=None, compile=True):
    """Load a model written by ``Sequential.save`` (see :mod:`tensornet.saving`)."""
    from .saving import load_model as _load

    return _load(path, custom_objects=custom_objects, compile=compile)
