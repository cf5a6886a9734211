"""The one forward / backward engine of every model: nodes in topological order.

A model is a list of :class:`Step` s, each one call of a layer: the slots (numbered tensors) it
reads, the slot it writes. ``Sequential`` is the chain x -> layer_1 -> ... -> layer_n; a graph
model (:class:`tensornet.models.Model`) any directed acyclic graph of layer calls.

Forward runs the steps in order, each ``h_out = f(h_in)`` (a list of inputs for a merge).
Backward runs them in reverse: a slot read by several steps receives the sum of their
gradients (the chain rule over every path), and a layer called k times (a shared layer) has one
set of weights whose gradient is the sum over its calls,
dL/dW = sum_k dL/dW|_call k. Each later call writes into a private buffer; the first call, which
back-propagates last, writes into the model's flat gradient buffer and the others are added to it.

Each later call of a shared layer runs on a :func:`call_view` of the layer: an object of the
layer's class that keeps what a call writes (cached activations, work buffers, its gradient
buffers) and reads everything else live from the layer (weights, random generator, moving
statistics, configuration), so the calls of one forward pass do not overwrite each other and a
generator or state the model replaces (loading, data parallelism) is seen by every call.
"""
from __future__ import annotations

_VIEW_CLASSES = {}


def _read_through(self, name):
    """Attribute lookup of a call view: its own attributes, then the viewed layer's, then the class's."""
    own = object.__getattribute__(self, "__dict__")
    if name in own:
        return own[name]
    layer = own.get("_viewed_layer")
    if layer is not None:
        shared = object.__getattribute__(layer, "__dict__")
        if name in shared:
            return shared[name]
    return object.__getattribute__(self, name)


def call_view(layer, gradients):
    """A later call of ``layer``: the same class and methods, its own ``_workspaces``,
    ``gradients`` (given) and whatever its ``forward`` / ``backward`` set; every other
    attribute read from ``layer`` itself."""
    cls = type(layer)
    view_cls = _VIEW_CLASSES.get(cls)
    if view_cls is None:
        view_cls = _VIEW_CLASSES[cls] = type(cls.__name__, (cls,), {"__getattribute__": _read_through,
                                                                     "__module__": cls.__module__})
    view = object.__new__(view_cls)
    view.__dict__.update(_viewed_layer=layer, _workspaces={}, gradients=gradients)
    return view


class Step:
    """One layer call: ``layer``, input slots ``inputs`` (a list; one slot unless the layer
    merges), output slot ``output``, and ``call`` (the layer itself for its first call, a
    :func:`call_view` of it for later ones)."""

    __slots__ = ("layer", "inputs", "output", "call")

    def __init__(self, layer, inputs, output):
        self.layer, self.inputs, self.output = layer, list(inputs), output
        self.call = layer


class GraphEngine:
    """Runs ``steps`` (topologically sorted) from ``input_slots`` to ``output_slots``."""

    def __init__(self, ops, steps, input_slots, output_slots):
        self.ops = ops
        self.steps = list(steps)
        self.input_slots, self.output_slots = list(input_slots), list(output_slots)
        self._buffers = {}
        self._values = {}
        self._calls = {}
        self._bind_calls()

    def _bind_calls(self):
        """Give each later call of a shared layer a view with private gradient buffers,
        and each call the ``needs_input_grad`` of its position: whether a layer with weights
        lies upstream of it."""
        ops, seen = self.ops, {}
        self._views = {}
        trains = {slot: False for slot in self.input_slots}
        readers = {}
        for step in self.steps:
            for slot in step.inputs:
                readers[slot] = readers.get(slot, 0) + 1
            count = seen.get(id(step.layer), 0)
            seen[id(step.layer)] = count + 1
            if count == 0:
                step.call = step.layer
            else:
                call = call_view(step.layer, {name: ops.zeros(tuple(view.shape), view.dtype)
                                              for name, view in step.layer.gradients.items()})
                step.call = call
                self._views.setdefault(id(step.layer), []).append(call)
            step.call.needs_input_grad = any(trains.get(slot, False) for slot in step.inputs)
            trains[step.output] = step.call.needs_input_grad or step.layer.count_params() > 0
        self._calls = seen
        self._readers = readers

    def why_not_chain(self):
        """None when the steps form a chain (one input, one output, each step reading the one
        before it, each layer called once), else what breaks the chain, in words."""
        if len(self.input_slots) != 1 or len(self.output_slots) != 1:
            return f"has {len(self.input_slots)} input(s) and {len(self.output_slots)} output(s)"
        shared = next((step.layer for step in self.steps if self._calls[id(step.layer)] > 1), None)
        if shared is not None:
            return f"calls layer {shared.name!r} {self._calls[id(shared)]} times (a shared layer)"
        previous = self.input_slots[0]
        for step in self.steps:
            if step.layer.merges or step.inputs != [previous]:
                return f"has a branch: layer {step.layer.name!r} reads " + (
                    f"{len(step.inputs)} tensors (a merge)" if step.layer.merges else "an earlier tensor (a skip)")
            previous = step.output
        return None

    def readers(self, slot) -> int:
        """How many steps read ``slot``."""
        return self._readers.get(slot, 0)

    def producer(self, slot):
        """The step that writes ``slot`` (None for an input slot)."""
        return next((step for step in self.steps if step.output == slot), None)

    # ------------------------------------------------------------------ forward
    def forward(self, inputs, training=False):
        """The output arrays (in ``output_slots`` order) for the input arrays (in
        ``input_slots`` order). Intermediate values stay referenced until the next call."""
        values = dict(zip(self.input_slots, inputs))
        for step in self.steps:
            if step.layer.merges:
                values[step.output] = step.call.forward([values[s] for s in step.inputs], training=training)
            else:
                values[step.output] = step.call.forward(values[step.inputs[0]], training=training)
        self._values = values
        return [values[slot] for slot in self.output_slots]

    # ------------------------------------------------------------------ backward
    def backward(self, output_grads, through_activation=None, hook=None):
        """Back-propagate ``output_grads`` (dL/d(output) per output slot; with
        ``through_activation[i]`` False, dL/d(logits) of the layer making output i), writing
        every layer's gradient into the flat buffer. ``hook(layer)`` is called once per layer,
        after its gradient is complete. Returns dL/d(input) per input slot (None where no
        gradient reaches it)."""
        grads, owned = {}, set()
        skip_activation = set()
        for i, (slot, grad) in enumerate(zip(self.output_slots, output_grads)):
            self._accumulate(grads, owned, slot, grad)
            if through_activation is not None and not through_activation[i]:
                skip_activation.add(slot)
        remaining = dict(self._calls)
        for step in reversed(self.steps):
            dy = grads.pop(step.output, None)
            if dy is None:
                continue
            dx = step.call.backward(dy, through_activation=step.output not in skip_activation)
            key = id(step.layer)
            remaining[key] -= 1
            if remaining[key] == 0:  # the first call, last in reverse order: the sum is complete
                for view in self._views.get(key, ()):
                    for name, grad in view.gradients.items():
                        self.ops.add_arrays(step.layer.gradients[name], grad, out=step.layer.gradients[name])
                if hook is not None:
                    hook(step.layer)
            if dx is None:
                continue
            for slot, grad in zip(step.inputs, dx if step.layer.merges else [dx]):
                if grad is not None:
                    self._accumulate(grads, owned, slot, grad)
        return [grads.get(slot) for slot in self.input_slots]

    def _accumulate(self, grads, owned, slot, grad):
        """Add ``grad`` to slot ``slot``'s gradient: the first one is kept by reference, a second
        one is summed into a buffer of the engine's (a layer's buffers are never written)."""
        current = grads.get(slot)
        if current is None:
            grads[slot] = grad
        elif slot in owned:
            self.ops.add_arrays(current, grad, out=current)
        else:
            buffer = self._buffer(slot, current.shape, current.dtype)
            grads[slot] = self.ops.add_arrays(current, grad, out=buffer)
            owned.add(slot)

    def _buffer(self, slot, shape, dtype):
        key = (slot, tuple(shape), str(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = self.ops.empty(shape, dtype)
        return buffer

    def release_workspaces(self):
        """Drop the engine's buffers and those of every call of every layer."""
        self._buffers.clear()
        self._values = {}
        for step in self.steps:
            step.call.release_workspaces()
