"""Synchronised BatchNormalization in data-parallel ``fit``: the sums over the ranks that
``BatchNormalization(synchronized=True)`` makes inside forward and backward.

Around each step every such layer gets ``statistics_sum``, a function that sums a 1-D buffer
over the ranks in place (MPI for host buffers, NCCL for CuPy ones). Forward makes two sums per
layer (column sums with the row count, then squared deviations), backward one (the
count-weighted gradient sums), so the layer normalises with the statistics of the whole global
batch, every rank's rows, and its input gradient is that of the global mean loss: K ranks train
like one process with the global batch, to float32 rounding
(:meth:`~tensornet.backend.array_ops.ArrayOps.batch_norm_forward_synchronized`).

Every rank must make the same sums in the same order, so a rank with no examples in a step (the
last, short global batch, or a used-up shard) still takes part: it runs the synchronised layers'
forward and backward on no rows (updating its moving statistics with the global batch's, as the
other ranks do), calling the model's gradient hook after each layer as backward does, so
gradient buckets started from that hook interleave with the statistics' sums exactly as on the
ranks with examples.
"""
from __future__ import annotations

from ..distributed.collectives import allreduce_sum_


def synchronized_layers(model):
    """The model's layers that normalise with statistics summed over the ranks, in forward order."""
    return [layer for layer in model.layers if getattr(layer, "synchronized", False) is True
            and hasattr(layer, "statistics_sum")]


class SynchronizedStatistics:
    """The sums over ranks of a model's synchronised BatchNormalization layers (see the module docstring)."""

    def __init__(self, world, model, device=None):
        self.world, self.model, self.device = world, model, device
        self.layers = synchronized_layers(model)

    def __bool__(self):
        return bool(self.layers)

    def all_sum(self, buffer):
        """``buffer`` <- its elementwise sum over the ranks, in place."""
        if self.device is not None:
            return self.device.allreduce_sum_(buffer, "the synchronized BatchNormalization statistics")
        return allreduce_sum_(self.world, buffer, "the synchronized BatchNormalization statistics")

    def arm(self):
        """Give each synchronised layer the sum over ranks for the step about to run."""
        for layer in self.layers:
            layer.statistics_sum = self.all_sum

    def disarm(self):
        for layer in self.layers:
            layer.statistics_sum = None

    def take_part_without_rows(self):
        """On a rank with no examples this step, run each call of a synchronised layer (a shared
        layer is called once per use in the model's engine) forward, which also updates its
        moving statistics with the global batch's, and backward on no rows, in the engine's
        order, so this rank makes every sum the ranks with examples make, in their order. The
        model's ``gradient_hook`` is called for each layer where the engine's backward calls it:
        after the layer's last call in reverse order (its first call), for every step a gradient
        reaches."""
        model = self.model
        synchronized = {id(layer) for layer in self.layers}
        steps = model.engine.steps

        def empty(call):
            return model.ops.zeros((0, *call.input_shape), model.dtype)

        for step in steps:
            if id(step.layer) in synchronized:
                step.call.forward(empty(step.call), training=True)
        hook = model.gradient_hook
        remaining = {}
        for step in steps:
            remaining[id(step.layer)] = remaining.get(id(step.layer), 0) + 1
        reached = set(model.engine.output_slots)
        for step in reversed(steps):
            if step.output not in reached:
                continue
            if id(step.layer) in synchronized:
                step.call.backward(empty(step.call))
            remaining[id(step.layer)] -= 1
            if remaining[id(step.layer)] == 0 and hook is not None:
                hook(step.layer)
            if step.call.needs_input_grad:
                reached.update(step.inputs)
