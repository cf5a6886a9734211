"""Model: a graph of layer calls with Keras' compile / fit / evaluate / predict face.

>>> a, b = Input(shape=(784,)), Input(shape=(784,))
>>> shared = Dense(48, activation="tanh", name="shared")
>>> s = Add()([shared(a), shared(b)])
>>> model = Model(inputs=[a, b], outputs=[Dense(10, activation="softmax", name="cls")(s), Dense(1, name="reg")(s)])
>>> model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5])

The layers run on one engine (:mod:`.engine`); :class:`~tensornet.models.Sequential` is the
chain special case of this class. The model owns the backend, a seeded generator (``seed``) used
for initialisation, shuffling and dropout, and a :class:`ParameterStore` holding every weight
(of each layer once, however often it is called) in one flat buffer.
"""
from __future__ import annotations

from ..backend import floatx, get_backend
from ..backend.config import check_float_dtype
from ..nn.layers.base import unique_name
from ..nn.parameters import ParameterStore
from ..optim import optimizers as optimizers_module
from ..training.trainer import Trainer
from ..utils import next_model_seed
from .engine import GraphEngine
from .graph import Topology, flatten_tensors
from .heads import epoch_metrics, make_heads
from .model_api import ModelAPI
from .model_arrays import ModelArrays
from .packing import Packing

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


class Model(ModelArrays, ModelAPI):
    """A model from its symbolic ``inputs`` to its ``outputs`` (each one tensor, a list, or a
    dict keyed by name); see the module docstring."""

    def __init__(self, inputs=None, outputs=None, name=None, dtype=None, seed=None):
        self.name = name or unique_name("model" if type(self) is Model else "sequential")
        self.layers = []
        self.dtype = check_float_dtype(dtype, "dtype") if dtype is not None else floatx()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None; got {seed!r}")
        self.seed = seed
        self.ops = self.rng = self.store = self.engine = None
        self.optimizer = self.loss = None
        self.metrics, self.heads = [], []
        self.compiled = self.built = False
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
        self.shard_states = None  # each rank's resume state, from a data-sharded fit's checkpoint
        #: Called as ``hook(layer)`` right after each layer's gradient is complete in the flat
        #: buffer (data-parallel training starts each bucket's all-reduce from it), or None.
        self.gradient_hook = None
        self._buffers = {}
        self._compile_args = None
        self._trainer = Trainer(self)
        self.topology = None
        self._input_packing = None
        if inputs is None and outputs is None and type(self) is not Model:
            return
        if inputs is None or outputs is None:
            raise ValueError("Model needs inputs=... and outputs=... (symbolic tensors from Input(...) and layer calls)")
        in_tensors, in_keys = flatten_tensors(inputs, "inputs")
        out_tensors, out_keys = flatten_tensors(outputs, "outputs")
        declared = {t.dtype for t in in_tensors if t.dtype is not None}
        if len(declared) > 1 or (dtype is not None and declared and declared != {self.dtype}):
            raise ValueError(f"the model computes in one dtype: its Inputs declare {sorted(declared)}"
                             + (f" and Model(dtype={self.dtype!r})" if dtype is not None else ""))
        if dtype is None and declared:  # Input(dtype=...) sets the model's dtype
            self.dtype = declared.pop()
        self.topology = Topology(in_tensors, out_tensors)
        self.layers = self.topology.layers
        self.input_names = in_keys or [t.layer.name for t in in_tensors]
        self.output_names = out_keys or _unique([t.layer.name for t in out_tensors])
        self._structure = ("dict" if isinstance(inputs, dict) else "list" if isinstance(inputs, (list, tuple))
                           else "single",
                           "dict" if isinstance(outputs, dict) else "list" if isinstance(outputs, (list, tuple))
                           else "single")
        self._input_shapes = [t.shape for t in in_tensors]
        self._output_shapes = [t.shape for t in out_tensors]
        self.build()

    # ------------------------------------------------------------------ structure
    @property
    def input_shape(self):
        """The per-example shape of what the batch loop feeds the model: the input's shape, or
        the width of the packed table of several inputs (:mod:`.packing`)."""
        return Packing(self._input_shapes).shape

    @property
    def output_shape(self):
        return Packing(self._output_shapes).shape

    def _chain(self):
        """``(steps, input slots, output slots)`` of the model's engine."""
        topology = self.topology
        return topology.steps, topology.input_slots, topology.output_slots

    def build(self, input_shape=None, backend=None, keep=None):
        """Build every layer for the shapes of its calls, allocate the flat parameter and
        gradient buffers on the backend, and initialise the weights from the seeded generator
        (or restore ``keep``, a ``get_weights()`` list covering the first layers)."""
        if input_shape is not None and tuple(input_shape) != tuple(self.input_shape):
            raise ValueError(f"model {self.name!r} takes inputs of shape {self.input_shape}; build got {input_shape}")
        self.ops = get_backend(backend) if backend is not None else (self.ops or get_backend())
        if self.rng is None:
            self.rng = self.ops.rng(self.seed if self.seed is not None else next_model_seed())
        for layer in self.layers:
            layer.build(layer.node_input_shapes, ops=self.ops, dtype=self.dtype)
        return self._allocate(keep)

    def _allocate(self, keep):
        """The flat store over the built layers, fresh weights where ``keep`` does not reach,
        and the engine over the model's calls."""
        for layer in self.layers:
            if getattr(layer, "seed", None) is None:
                layer.rng = self.rng
        self.store = ParameterStore(self.ops, self.layers)
        kept, done = (0 if keep is None else len(keep)), 0
        for layer in self.layers:  # layers ``keep`` does not cover (added since) start fresh
            if done >= kept:
                layer.initialize(self.rng)
            done += len(layer.weight_specs())
        steps, input_slots, output_slots = self._chain()
        self.engine = GraphEngine(self.ops, steps, input_slots, output_slots)
        packing = Packing(self._input_shapes)
        #: How a batch table is cut into the inputs (None: one input, the table itself).
        self._input_packing = None if packing.single else packing
        self.built = True
        if keep is not None:
            keep = list(keep)
            self._assign_weights(list(self.store.views())[:len(keep)], keep)
        if self.compiled:
            self._finish_compile()
        return self

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, backend=None,
                jit_compile="auto"):
        """Choose the optimizer, the loss(es) and metrics (names or objects; per output as a list
        or a dict keyed by output name, see :mod:`.heads`), ``loss_weights``, and optionally the
        backend (``"numpy"``, ``"cupy"``, ``"auto"``; default: the current one).

        ``jit_compile``: ``"auto"`` (default) trains through the backend's whole-step kernel
        where it serves the model (on the CPU with Numba and MKL: a chain of Dense layers, relu,
        softmax cross-entropy, SGD; :mod:`tensornet.backend.numpy_whole_step`), else layer by
        layer; ``True`` requires it (``fit`` says why not); ``False`` always trains layer by layer."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'")
        jit_compile = check_jit_compile(jit_compile)
        if metrics is not None and not isinstance(metrics, (list, tuple, dict)):
            raise TypeError(f"metrics must be a list of metric names; got {type(metrics).__name__}")
        self.optimizer = optimizers_module.get(optimizer)
        self._compile_args = (loss, metrics, loss_weights)
        self._metric_ids = metrics if isinstance(metrics, dict) else list(metrics or [])
        target = get_backend(backend) if backend is not None else (self.ops or get_backend())
        target.check_parameter_dtype(self.dtype)
        self._make_heads()
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

    def _make_heads(self):
        loss, metrics, loss_weights = self._compile_args
        self.heads = make_heads(self.output_names, self._output_shapes, loss, loss_weights, metrics)
        self.loss = self.heads[0].loss if len(self.heads) == 1 else None

    def _finish_compile(self):
        self._make_heads()
        engine = self.engine
        for head, slot in zip(self.heads, engine.output_slots):
            producer = engine.producer(slot)
            alone = engine.readers(slot) == 0 and engine.output_slots.count(slot) == 1
            head.fused = (head.loss.fused_activation(producer.layer.output_activation)
                          if producer is not None and alone else None)
            head.step = producer
        self.metrics = epoch_metrics(self.heads)
        single = self.heads[0] if len(self.heads) == 1 else None
        self.fused_output = single.fused if single else None
        #: Index of the accuracy metric the fused softmax cross-entropy counts in its own pass.
        self.counted_metric = next(
            (i for i, metric in enumerate(self.metrics) if single and self.fused_output
             and hasattr(single.loss, "fused_count")
             and getattr(metric, "kind", None) == ("sparse" if single.loss.target_kind == "sparse" else "categorical")),
            None)
        self._fused_correct = None
        self._target_packing = Packing([h.target_shape for h in self.heads],
                                       [h.loss.target_kind == "sparse" for h in self.heads])
        self.optimizer.build(self.store)

    def require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"the model must be compiled before {what}(): call model.compile(optimizer=..., "
                               "loss=...) first")

    # ------------------------------------------------------------------ computing
    def forward(self, x, training=False):
        """The outputs for the batch ``x`` (packed into one table when there are several)."""
        packing = self._input_packing
        inputs = [x] if packing is None else packing.unpack(self.ops, x, self._workspace)
        outputs = self.engine.forward(inputs, training=training)
        self._outputs = outputs
        if len(outputs) == 1:
            return outputs[0]
        n = outputs[0].shape[0]
        parts = [out.reshape(n, -1) for out in outputs]
        return self.ops.concatenate(parts, 1, out=self._workspace("pred", (n, sum(p.shape[1] for p in parts))))

    def backward(self, dy, through_activation=True):
        """Back-propagate dL/d(output) of a single-output model; returns dL/d(input)."""
        return self.engine.backward([dy], [through_activation], hook=self.gradient_hook)[0]

    def backpropagate(self, pred, y):
        """Back-propagate the loss of the last forward pass against the batch targets ``y``:
        dL/d(output i) = loss_weights[i] d(loss_i)/d(output i) into a workspace (straight from
        the logits, (p - y) / N, for a fused softmax cross-entropy), then every layer's gradients
        into the flat gradient buffer. Returns the weighted loss summed over the batch."""
        ops, heads = self.ops, self.heads
        targets = self._target_packing.unpack(ops, y, self._workspace)
        grads, total = [], None
        for i, (head, out, target) in enumerate(zip(heads, self._outputs, targets)):
            grad = self._workspace(("dy", i), out.shape)
            if head.fused:
                logits = head.step.call.logits
                if len(heads) == 1 and self.counted_metric is not None:
                    loss_sum, self._fused_correct = head.loss.fused_count(ops, logits, out, target, grad)
                else:
                    loss_sum = head.loss.fused(ops, logits, out, target, grad)
            else:
                loss_sum = head.loss.total(ops, out, target)
                head.loss.gradient(ops, out, target, out=grad)
            if head.weight != 1.0:
                ops.scale(grad, head.weight, out=grad)
            head.loss_sum, head.pred, head.target = loss_sum, out, target
            grads.append(grad)
            total = _weighted_add(total, loss_sum, head.weight)
        if len(heads) == 1:
            self.backward(grads[0], through_activation=not heads[0].fused)
        else:
            self.engine.backward(grads, [not head.fused for head in heads], hook=self.gradient_hook)
        return total

    def take_fused_count(self):
        """``(metric index, correct count)`` the last :meth:`backpropagate` counted with the loss
        (a 0-d device array), or None; each count is handed out once."""
        correct, self._fused_correct = self._fused_correct, None
        return None if correct is None else (self.counted_metric, correct)

    def evaluation_loss(self, pred, y):
        """The weighted loss of the last forward pass against ``y``, summed over the batch, on
        the device; no gradient."""
        targets = self._target_packing.unpack(self.ops, y, self._workspace)
        total = None
        for head, out, target in zip(self.heads, self._outputs, targets):
            if head.fused:
                logits = head.step.call.logits
                loss_sum = head.loss.fused_total(self.ops, logits, target)
            else:
                loss_sum = head.loss.total(self.ops, out, target)
            head.loss_sum, head.pred, head.target = loss_sum, out, target
            total = _weighted_add(total, loss_sum, head.weight)
        return total

    def describe_step(self):
        """The model as the plain description a backend's whole-step kernel reads (so no backend
        names a layer class), or a str saying why it offers none: ``layers`` (each layer's
        :meth:`~tensornet.nn.layers.Layer.describe_step`, in chain order), ``loss``
        (``"softmax_crossentropy"`` when the softmax output is fused with the loss, else the
        loss's name), ``optimizer`` (:meth:`~tensornet.optim.optimizers.Optimizer.describe`),
        ``dtype`` and ``dtypes`` (how many parameter dtypes). Whole-step kernels run a chain of
        layers from one input to one output; any other graph is described by why not."""
        if self.jit_compile is False:
            return "compile(jit_compile=False)"
        why = self.engine.why_not_chain()
        if why is not None:
            return f"whole-step kernels run a chain of layers from one input to one output; this model {why}"
        loss = self.loss.name + (" (from_logits)" if self.loss.from_logits else "")
        return {"layers": [step.layer.describe_step(self.store) for step in self.engine.steps],
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
        """Drop every work buffer (this model's, its engine's and its layers'); they are made
        again on use."""
        self._buffers.clear()
        if self.engine is not None:
            self.engine.release_workspaces()
        for layer in self.layers:
            layer.release_workspaces()

    def predict(self, x, batch_size=None, verbose=0):
        """Model outputs for ``x``, computed in batches: an array, or a list (a dict) of arrays
        for a model with several outputs given as a list (a dict)."""
        return self.split_outputs(self._trainer.predict(x, batch_size=batch_size, verbose=verbose))


def _weighted_add(total, loss_sum, weight):
    term = loss_sum if weight == 1.0 else loss_sum * weight
    return term if total is None else total + term


def _unique(names):
    seen, result = {}, []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        result.append(name if count == 0 else f"{name}_{count}")
    return result
