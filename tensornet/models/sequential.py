"""Sequential: a stack of layers with Keras' compile / fit / evaluate / predict face."""
from __future__ import annotations

import os

from ..nn import losses as losses_module
from ..nn import metrics as metrics_module
from ..optim import optimizers as optimizers_module
from ..backend import floatx, get_backend
from ..backend.config import check_float_dtype
from ..nn.layers.base import Layer, check_shape, unique_name
from ..nn.parameters import ParameterStore
from ..training.trainer import Trainer
from ..utils import next_model_seed
from . import saving
from .summary import summary_lines


#: ``compile(jit_compile=...)``: "auto" trains through the backend's whole-step kernel where it
#: serves the model, True requires it (``fit`` raises and says why where it does not), False
#: always trains layer by layer.
JIT_CHOICES = ("auto", True, False)


def check_jit_compile(value):
    """``value`` when it is one of :data:`JIT_CHOICES` (None means "auto"), else a ValueError."""
    if value is None:
        return "auto"
    if not any(value is choice or (isinstance(value, str) and value == choice) for choice in JIT_CHOICES):
        raise ValueError(f"jit_compile must be 'auto', True or False; got {value!r}")
    return value


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
        self.counted_metric = self._fused_correct = None
        #: ``compile(jit_compile=...)``: whether ``fit`` may train through a compiled step.
        self.jit_compile = "auto"
        self.stop_training = False
        self.history = None
        #: Epochs trained so far (what ``save`` records and ``fit(initial_epoch=...)`` resumes from).
        self.epochs_completed = 0
        #: Set by loading a checkpoint taken inside an epoch: where ``fit`` continues that epoch.
        self.resume_point = None
        #: Called as ``hook(layer)`` right after each layer's backward has written its gradients
        #: (data-parallel training starts each bucket's all-reduce from it), or None.
        self.gradient_hook = None
        self._buffers = {}
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

        ``jit_compile``: ``"auto"`` (default) trains through the backend's whole-step kernel
        where it serves the model (on the CPU with Numba and MKL: Dense layers, relu, softmax
        cross-entropy, SGD; :mod:`tensornet.backend.numpy_whole_step`), else layer by layer;
        ``True`` requires it (``fit`` says why not); ``False`` always trains layer by layer."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'")
        jit_compile = check_jit_compile(jit_compile)
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list of metric names; got {type(metrics).__name__}")
        self._metric_ids = list(metrics or [])
        target = get_backend(backend) if backend is not None else (self.ops or get_backend())
        target.check_parameter_dtype(self.dtype)
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
        #: Index of the accuracy metric the fused softmax cross-entropy counts in its own pass.
        self.counted_metric = next(
            (i for i, metric in enumerate(self.metrics) if self.fused_output and hasattr(self.loss, "fused_count")
             and getattr(metric, "kind", None) == ("sparse" if self.loss.target_kind == "sparse" else "categorical")),
            None)
        self._fused_correct = None
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
        hook = self.gradient_hook
        for layer in reversed(self.layers):
            dy = layer.backward(dy, through_activation=through_activation)
            if hook is not None:
                hook(layer)
            through_activation = True
            if dy is None:
                break
        return dy

    def backpropagate(self, pred, y):
        """Back-propagate the loss of ``pred`` (this batch's forward output) against ``y``: write
        dL/d(output) into a workspace, then every layer's gradients into the flat gradient buffer,
        last layer first. Returns the loss summed over the batch, on the device.

        With a softmax output and (sparse) categorical cross-entropy the gradient with respect to
        the logits is (p - y) / N, computed directly, never through the clipped log."""
        grad = self._workspace("dy", pred.shape)
        if self.fused_output and self.counted_metric is not None:
            loss_sum, self._fused_correct = self.loss.fused_count(self.ops, self.layers[-1].logits, pred, y, grad)
        elif self.fused_output:
            loss_sum = self.loss.fused(self.ops, self.layers[-1].logits, pred, y, grad)
        else:
            loss_sum = self.loss.total(self.ops, pred, y)
            self.loss.gradient(self.ops, pred, y, out=grad)
        self.backward(grad, through_activation=not self.fused_output)
        return loss_sum

    def take_fused_count(self):
        """``(metric index, correct count)`` the last :meth:`backpropagate` counted with the loss
        (a 0-d device array), or None; each count is handed out once."""
        correct, self._fused_correct = self._fused_correct, None
        return None if correct is None else (self.counted_metric, correct)

    def evaluation_loss(self, pred, y):
        """The loss of ``pred`` (this batch's forward output) against ``y``, summed over the
        batch, on the device; no gradient."""
        if self.fused_output:
            return self.loss.fused_total(self.ops, self.layers[-1].logits, y)
        return self.loss.total(self.ops, pred, y)

    def describe_step(self):
        """The model as the plain description a backend's whole-step kernel reads (so no backend
        names a layer class), or a str saying why it offers none: ``layers`` (each layer's
        :meth:`~tensornet.nn.layers.Layer.describe_step`), ``loss`` (``"softmax_crossentropy"``
        when the softmax output is fused with the loss, else the loss's name), ``optimizer``
        (:meth:`~tensornet.optim.optimizers.Optimizer.describe`), ``dtype`` and ``dtypes`` (how
        many parameter dtypes)."""
        if self.jit_compile is False:
            return "compile(jit_compile=False)"
        loss = self.loss.name + (" (from_logits)" if self.loss.from_logits else "")
        return {"layers": [layer.describe_step(self.store) for layer in self.layers],
                "loss": "softmax_crossentropy" if self.fused_output and self.loss.name in (
                    "categorical_crossentropy", "sparse_categorical_crossentropy") else loss,
                "optimizer": self.optimizer.describe(), "dtype": str(self.dtype), "dtypes": len(self.store.groups)}

    def _workspace(self, tag, shape):
        """A buffer of this model's dtype kept per (tag, shape), so batches allocate nothing."""
        key = (tag, tuple(shape))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = self.ops.empty(shape, self.dtype)
        return buffer

    def release_workspaces(self):
        """Drop every work buffer (this model's and its layers'); they are made again on use."""
        self._buffers.clear()
        for layer in self.layers:
            layer.release_workspaces()

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0, check_finite=True, data_sharded=False):
        """Train for ``epochs`` (from ``initial_epoch``) on shuffled mini-batches; returns a History.

        With ``check_finite`` (the default) a NaN or infinite loss or gradient stops training
        with :class:`~tensornet.errors.DivergenceError`, the model put back to its state after
        the last finite step (see :mod:`tensornet.training.divergence`). A model loaded from a checkpoint
        taken inside an epoch continues that epoch when ``initial_epoch`` is its
        ``epochs_completed``.

        After :func:`tensornet.distributed.init` under ``mpirun -n K``, ``batch_size`` is the global
        batch split across the K ranks (see :mod:`tensornet.training.data_parallel`); every rank
        passes the same arrays, or with ``data_sharded=True`` its own part of the data."""
        return self._trainer.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                                 callbacks=callbacks, validation_split=validation_split,
                                 validation_data=validation_data, shuffle=shuffle, initial_epoch=initial_epoch,
                                 check_finite=check_finite, data_sharded=data_sharded)

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
        :mod:`tensornet.models.saving` and :func:`tensornet.models.load_model`."""
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path!r} exists and overwrite=False")
        saving.save_model(self, path, include_optimizer=include_optimizer)

    def save_checkpoint(self, path, resume_point=None):
        """Write what :meth:`save` writes plus ``resume_point`` (where an epoch stood, from the
        training loop) to ``path`` atomically: the ``Checkpoints`` callback's file."""
        return saving.save_checkpoint(self, path, resume_point)

    def save_weights(self, path):
        """Write only the weights (same file format as ``save``)."""
        saving.save_weights(self, path)

    def load_weights(self, path):
        """Set the weights from a file written by ``save`` or ``save_weights``."""
        saving.load_weights(self, path)

    def _require_built(self, what):
        if not self.built:
            raise RuntimeError(f"{what}() needs a built model: give the first layer input_shape=... or "
                               "call build(input_shape) or fit first")

    def summary(self, print_fn=print, line_length=65):
        """Print layers, output shapes and parameter counts, as Keras does."""
        if not self.built and self.input_shape is not None:
            self._infer_shapes()
        for line in summary_lines(self, line_length):
            print_fn(line)
