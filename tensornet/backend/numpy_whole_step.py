"""The NumPy backend's whole training step: forward, softmax cross-entropy, backward and the SGD
or Adam update of a Dense network in one compiled call
(:func:`._numba_step_call.mlp_train_step`), on MKL and the shared thread pool.
:meth:`NumpyBackend.training_step` returns it for every model it serves and the layered step
(:class:`.training_step.LayeredStep`) for the others, with the reason.

The layered step calls the backend once per layer and phase; on the CPU the Python and the
element-wise passes over data another core's product just wrote cost a quarter to a third of
the step beside the matrix products. Here each core keeps its rows of the batch, then its rows
of the weights (bench/README.md gives the measured share of the step spent in GEMM for both).

A model is served when its description (``model.describe_step()``) says:

- its layers are ``dense`` after any number of leading ``flatten``; hidden activations linear or
  relu; the output a softmax with (sparse) categorical cross-entropy, the pair the layered step
  fuses (``loss == "softmax_crossentropy"``);
- the optimizer's rule is ``sgd`` (any momentum, Nesterov, decay or schedule, weight decay) or
  ``adam`` (any betas, epsilon, decay or schedule; not AMSGrad), without clipping;
- the parameters are one float32 or float64 buffer and no kernel exceeds :data:`MAX_WEIGHT_BYTES`;
- the backend can run the kernel now (:func:`.mlp_step.compiled_mlp_step`: inside ``fit``,
  Numba and MKL on the shared pool, a largest product large enough to thread).

The divergence guard's replays (``update=False``) make the same gradients with the same kernel,
then apply the optimizer's own update over the flat buffer, the same element-wise arithmetic,
so a replay reproduces the step to the bit. The whole step and the layered one agree to
rounding: MKL may sum a row-split product in another order (``tests/test_backend_whole_step.py``).
"""
from __future__ import annotations

from .mlp_step import compiled_mlp_step
from .training_step import LayeredStep

#: The largest weight matrix the whole step takes. Each core multiplies its rows of the batch by
#: whole weight matrices: on 2 cores with 2 MB of L2 each, that beats MKL's threaded products up
#: to 1536 x 1536 (9.4 MB) and loses at 2048 x 2048 (16.8 MB); bench/README.md has the figures.
MAX_WEIGHT_BYTES = 12 << 20

_FLOATS = ("float32", "float64")


def unserved(description):
    """Why the whole step cannot train the model ``description`` describes, whatever the
    backend's state; None when it can."""
    if isinstance(description, str):
        return description
    layers = list(description["layers"])
    while layers and layers[0]["op"] == "flatten":
        layers.pop(0)
    for layer in layers:
        if layer["op"] != "dense":
            return f"layer {layer['name']!r} is a {layer['class']}, not a Dense layer"
    if not layers:
        return "the model has no Dense layer"
    for layer in layers[:-1]:
        if layer["activation"] not in ("linear", "relu"):
            return (f"layer {layer['name']!r} has activation {layer['activation']!r}; hidden layers need relu "
                    "or linear")
    if description["loss"] != "softmax_crossentropy":
        return (f"the output is {layers[-1]['activation']!r} with loss {description['loss']!r}; the whole step "
                "needs a softmax output with categorical or sparse categorical cross-entropy")
    reason = optimizer_problem(description["optimizer"])
    if reason is not None:
        return reason
    if description["dtypes"] != 1:
        return "the parameters have more than one dtype"
    if description["dtype"] not in _FLOATS:
        return f"the parameters are {description['dtype']}; the whole step takes float32 or float64"
    for layer in layers:
        if layer["kernel_bytes"] > MAX_WEIGHT_BYTES:
            return (f"the kernel of layer {layer['name']!r} takes {layer['kernel_bytes'] / 2 ** 20:.1f} MiB, above "
                    f"{MAX_WEIGHT_BYTES / 2 ** 20:.0f} MiB: MKL's threaded products are faster there")
    return None


def optimizer_problem(rule):
    """Why the whole step cannot make the update the optimizer describes (``rule``), or None."""
    if rule["rule"] not in ("sgd", "adam"):
        return f"the optimizer is {rule['class']}; the whole step has SGD's and Adam's updates only"
    if rule["rule"] == "adam" and rule["amsgrad"]:
        return "the optimizer is Adam with AMSGrad; the whole step has plain Adam's update only"
    if rule["clips"]:
        return "the optimizer clips gradients (clipping needs every gradient before the first update)"
    return None


def plan(ops, model, batch_size):
    """``(WholeStep, None)`` for ``model`` trained on ``ops`` in batches of ``batch_size``, or
    ``(None, reason)``. Called inside the loop (after the backend's ``start()``)."""
    description = model.describe_step()
    reason = unserved(description)
    if reason is not None:
        return None, reason
    dense = [layer for layer in description["layers"] if layer["op"] == "dense"]
    largest = max(batch_size * layer["inputs"] * layer["units"] for layer in dense)
    run, reason = compiled_mlp_step(ops, ops.dtype(description["dtype"]), largest)
    if run is None:
        return None, reason
    return WholeStep(model, dense, run), None


class WholeStep:
    """A model's training step through the compiled kernel: workspaces per batch size (allocated
    once), the network's table the kernel reads, and the layered step for batches it cannot take."""

    path = "compiled"
    reason = None

    def __init__(self, model, dense, run):
        self.model, self._run = model, run
        self._layered = LayeredStep(model)
        self._workspaces = {}
        self._weights = [(layer["kernel"], layer["bias"], layer["inputs"], layer["units"],
                          int(layer["activation"] == "relu")) for layer in dense]

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

    def _rule(self, x, y):
        """The optimizer's description when the kernel can run now and read ``x`` and ``y`` in
        place, else None. The optimizer must still be an unclipped SGD (with a velocity where it
        has momentum) or Adam with its moments (a callback may change it during ``fit``); ``x``
        and ``y`` C-contiguous in the model's dtype, integer labels as int64."""
        if not self._run.ready:
            return None
        rule = self.model.optimizer.describe()
        if optimizer_problem(rule) is not None:
            return None
        if rule["rule"] == "sgd" and rule["momentum"] and rule["velocity"] is None:
            return None
        if rule["rule"] == "adam" and (rule["m"] is None or rule["v"] is None):
            return None
        dtype = self.model.ops.dtype(self.model.dtype)
        if x.dtype != dtype or not x.flags.c_contiguous or x.shape[0] == 0:
            return None
        if y.ndim == 1:
            return rule if str(y.dtype) == "int64" and y.flags.c_contiguous else None
        return rule if y.dtype == dtype and y.flags.c_contiguous else None

    def takes(self, x, y):
        """Whether the kernel (not the layered step) trains the batch ``(x, y)`` now."""
        return self._rule(x.reshape(x.shape[0], -1), y) is not None

    def _call(self, x, y, rule, lr, update, warm):
        table, acts, dz, probs = self._workspace(x.shape[0])
        params, grads = self.model.store.flat()
        rule = dict(rule, lr=lr, t=self.model.optimizer.iterations)
        loss = self._run(x, y, params, grads, table, acts, dz, probs, rule, update, warm)
        return probs, loss

    def __call__(self, x, y, update=True):
        """One step on the batch, as :meth:`LayeredStep.__call__`: ``(probabilities, loss sum)``.
        A batch the kernel cannot take goes through the layered step."""
        flat = x.reshape(x.shape[0], -1)
        rule = self._rule(flat, y)
        if rule is None:
            return self._layered(x, y, update)
        # While a child process compiles part of the kernel (the first batch, with an empty disk
        # cache), an inference forward over the batch compiles the kernels validation runs.
        warm = lambda: self.model.forward(x, training=False)  # noqa: E731
        if not update:
            return self._call(flat, y, rule, self.model.optimizer.learning_rate, False, warm)
        return self.model.optimizer.apply_fused(lambda lr: self._call(flat, y, rule, lr, True, warm))
