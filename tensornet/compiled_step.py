"""The compiled training step: forward, loss, backward and optimizer update of a whole model as
one backend call, where the model and the backend allow it (``compile(jit_compile=...)``).

The layered step calls the backend once per layer and phase. On the CPU that costs about a
third of the step beside the matrix products (Python, and element-wise passes over data another
core's product wrote): the GEMM floor was 67-74 % of the layered step on 784-512-512-10 at batch
128, and 66-98 % of this one, in which each core keeps its rows of the batch, then its rows of
the weights (bench/NOTES.md, sessions 6 and 7; the figure moves with the machine's load).

A model trains through it when all of these hold (:func:`unsupported` says which does not):

- its layers are Dense, after any number of leading Flatten layers; hidden activations are
  linear or relu; the last layer's is softmax, with categorical or sparse categorical
  cross-entropy (not ``from_logits``), the loss the layered step fuses with it;
- the optimizer is :class:`~tensornet.optimizers.SGD` (any momentum, Nesterov, decay or
  schedule, weight decay) without clipping;
- the parameters are float32 or float64 and no weight matrix exceeds ``MAX_WEIGHT_BYTES``;
- the backend has such a step now (:meth:`Backend.compiled_mlp_step`: the NumPy backend inside
  ``fit``, with Numba and MKL on the shared pool, for models whose largest product is threaded).

Everything around the step is the layered step's: the batches, the epoch totals and metrics
(computed on the probabilities it leaves), callbacks, checkpoints, and the divergence guard,
whose replays (:meth:`Trainer.checked_step` on :meth:`CompiledStep.gradients`) make the same
gradients with the same kernel and apply the same SGD arithmetic, so a replay reproduces the
compiled step to the bit.

The two steps agree to rounding, not to the bit: the products are split by rows, and MKL may
sum a row-split product in another order (``tests/test_compiled_step.py``).
"""
from __future__ import annotations

from .layers.dense import Dense
from .layers.flatten import Flatten
from .losses import CategoricalCrossentropy
from .optimizers import SGD

#: The largest weight matrix the compiled step takes. Each core multiplies its rows of the batch
#: by whole weight matrices; on the 2-core machine (2 MB L2 per core) that beat MKL's threaded
#: products up to 1536 x 1536 (9.4 MB: step 20.7 against 23.2 ms at batch 128) and lost at
#: 2048 x 2048 (16.8 MB: 41.9 against 37.1 ms at batch 128, 76.1 against 59.6 at 256).
MAX_WEIGHT_BYTES = 12 << 20

#: ``compile(jit_compile=...)``: "auto" uses the compiled step where possible, True requires it
#: (``fit`` raises and says why where it is not possible), False never uses it.
JIT_CHOICES = ("auto", True, False)


def check_jit_compile(value):
    """``value`` when it is one of :data:`JIT_CHOICES` (None means "auto"), else a ValueError."""
    if value is None:
        return "auto"
    if not any(value is choice or (isinstance(value, str) and value == choice) for choice in JIT_CHOICES):
        raise ValueError(f"jit_compile must be 'auto', True or False; got {value!r}")
    return value


def _dense_layers(model):
    """The model's Dense layers (after leading Flatten layers), or a str saying why not."""
    layers = list(model.layers)
    while layers and type(layers[0]) is Flatten:
        layers.pop(0)
    for layer in layers:
        if type(layer) is not Dense:
            return f"layer {layer.name!r} is a {type(layer).__name__}, not a Dense layer"
    if not layers:
        return "the model has no Dense layer"
    for layer in layers[:-1]:
        if layer.activation.name not in ("linear", "relu"):
            return f"layer {layer.name!r} has activation {layer.activation.name!r}; hidden layers need relu or linear"
    return layers


def _optimizer_problem(optimizer):
    """Why the compiled step cannot make ``optimizer``'s update, or None."""
    if type(optimizer) is not SGD:
        return f"the optimizer is {type(optimizer).__name__}; the compiled step has SGD's update only"
    if optimizer.clips:
        return "the optimizer clips gradients (clipping needs every gradient before the first update)"
    return None


def unsupported(model):
    """Why ``model`` (compiled) cannot train through a compiled step, whatever the backend; None
    when it can."""
    if model.jit_compile is False:
        return "compile(jit_compile=False)"
    layers = _dense_layers(model)
    if isinstance(layers, str):
        return layers
    loss = model.loss
    if not isinstance(loss, CategoricalCrossentropy) or not model.fused_output:
        return (f"the output is {layers[-1].activation.name!r} with loss {loss.name!r}"
                f"{' (from_logits)' if loss.from_logits else ''}; the compiled step needs a softmax output "
                "with categorical or sparse categorical cross-entropy")
    reason = _optimizer_problem(model.optimizer)
    if reason is not None:
        return reason
    if len(model.store.groups) != 1:
        return "the parameters have more than one dtype"
    for layer in layers:
        kernel = layer.weights["kernel"]
        size = kernel.size * kernel.dtype.itemsize
        if size > MAX_WEIGHT_BYTES:
            return (f"the kernel of layer {layer.name!r} takes {size / 2 ** 20:.1f} MiB, above "
                    f"{MAX_WEIGHT_BYTES / 2 ** 20:.0f} MiB: MKL's threaded products are faster there")
    return None


class CompiledStep:
    """A model's training step through the backend's compiled step: workspaces per batch size
    (allocated once), and the network's description the kernel reads."""

    def __init__(self, model, layers, run):
        self.model, self.layers, self._run = model, layers, run
        self._workspaces = {}
        offsets = {(id(layer), name): offset for layer, name, _, _, offset in model.store.slots}
        self._weights = [(offsets[id(layer), "kernel"], offsets.get((id(layer), "bias"), -1),
                          layer.weights["kernel"].shape[0], layer.units, int(layer.activation.name == "relu"))
                         for layer in layers]

    @classmethod
    def plan(cls, model, batch_size):
        """``(CompiledStep, None)`` for ``model`` trained in batches of ``batch_size``, or
        ``(None, reason)``. Call inside the loop (after the backend's ``start()``)."""
        reason = unsupported(model)
        if reason is not None:
            return None, reason
        layers = _dense_layers(model)
        largest = max(batch_size * layer.weights["kernel"].size for layer in layers)
        run, reason = model.ops.compiled_mlp_step(model.dtype, largest)
        if run is None:
            return None, reason
        return cls(model, layers, run), None

    def _workspace(self, batch):
        """(table, acts, dz, probs) for batches of ``batch`` rows."""
        workspace = self._workspaces.get(batch)
        if workspace is None:
            ops, dtype = self.model.ops, self.model.dtype
            rows, offset = [], 0
            for w_off, b_off, k, n, relu in self._weights:
                rows.append([w_off, b_off, k, n, offset, relu])
                offset += batch * n
            table = ops.asarray(rows, "int64")
            workspace = self._workspaces[batch] = (table, ops.empty((offset,), dtype), ops.empty((offset,), dtype),
                                                   ops.empty((batch, self._weights[-1][3]), dtype))
        return workspace

    def _suits(self, x, y):
        """Whether the kernel can run now (``ready``; the optimizer still an unclipped SGD with a
        velocity where it has momentum: a callback may change it during ``fit``) and reads ``x``
        and ``y`` in place (C-contiguous, the model's dtype; integer labels as int64)."""
        optimizer = self.model.optimizer
        if not self._run.ready or _optimizer_problem(optimizer) is not None:
            return False
        dtype = self.model.ops.dtype(self.model.dtype)
        if optimizer.momentum and "velocity" not in optimizer.state.get(str(dtype), {}):
            return False
        if x.dtype != dtype or not x.flags.c_contiguous or x.shape[0] == 0:
            return False
        if y.ndim == 1:
            return str(y.dtype) == "int64" and y.flags.c_contiguous
        return y.dtype == dtype and y.flags.c_contiguous

    def _call(self, x, y, lr, update):
        model = self.model
        optimizer, (params, grads) = model.optimizer, next(iter(model.store.groups.values()))
        velocity = optimizer.state[str(params.dtype)].get("velocity")
        table, acts, dz, probs = self._workspace(x.shape[0])
        loss = self._run(x, y, params, grads, velocity, table, acts, dz, probs, lr, optimizer.momentum,
                         optimizer.nesterov, optimizer.weight_decay, update)
        return probs, loss

    def step(self, xb, yb):
        """One training step on the batch: ``(probabilities, loss sum)``, or None (nothing done)
        when the kernel cannot run now or the batch's arrays do not suit it (the layered step then
        takes it)."""
        x = xb.reshape(xb.shape[0], -1)
        if not self._suits(x, yb):
            return None
        return self.model.optimizer.apply_fused(lambda lr: self._call(x, yb, lr, True))

    def gradients(self, xb, yb):
        """The batch's loss sum, with every gradient made and nothing updated (the divergence
        guard's replay, :meth:`Trainer.checked_step`, which then applies the optimizer's own
        update over the flat buffer: the same element-wise SGD arithmetic as the fused one), or
        None (nothing done) when the kernel cannot run now or the batch does not suit it."""
        x = xb.reshape(xb.shape[0], -1)
        if not self._suits(x, yb):
            return None
        return self._call(x, yb, self.model.optimizer.learning_rate, False)[1]
