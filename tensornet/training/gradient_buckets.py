"""All-reduce overlapped with backward, as DDP's reducer does: the flat gradient buffer is cut
into buckets of consecutive layers, last layer first, each about ``bucket_bytes``; as soon as
backward has written the gradients of every layer in a bucket (the model's ``gradient_hook``
reports each layer), that range of the buffer is scaled by n_r / N and its non-blocking
all-reduce starts, while backward goes on with the layers before it. The step waits for every
bucket (with the world's timeout) before the optimizer update.

The buckets are contiguous ranges of the one flat buffer (ParameterStore lays layers out in
order), so every element is summed exactly as the one-call all-reduce sums it.
"""
from __future__ import annotations

from ..distributed.collectives import finish, start_allreduce_sum


class GradientBuckets:
    """Buckets over ``model.store``'s single flat gradient buffer."""

    def __init__(self, world, model, bucket_bytes):
        self.world, self.model = world, model
        _, self.grads = model.store.flat()
        spans = {}  # layer -> [start, stop) of its weights in the flat buffer
        for layer, _, shape, _, offset in model.store.slots:
            count = 1
            for extent in shape:
                count *= extent
            start, stop = spans.get(id(layer), (offset, offset + count))
            spans[id(layer)] = (min(start, offset), max(stop, offset + count))
        ordered = [layer for layer in model.layers if id(layer) in spans]
        bounds, filled = [], 0  # (first layer of a bucket, where it starts), last bucket first
        for layer in reversed(ordered):
            start, stop = spans[id(layer)]
            filled += (stop - start) * self.grads.itemsize
            if filled >= bucket_bytes:
                bounds.append((layer, start))
                filled = 0
        if filled or not bounds:
            bounds.append((ordered[0], 0))
        bounds[-1] = (bounds[-1][0], 0)
        #: (first layer of the bucket in forward order, start, stop), last bucket first.
        self.buckets, end = [], self.grads.shape[0]
        for layer, start in bounds:
            self.buckets.append((layer, start, end))
            end = start
        self._first_layers = {id(first): index for index, (first, _, _) in enumerate(self.buckets)}
        self.requests, self.scale, self.started = [], 1.0, 0

    def begin(self, scale):
        """Arm the hook for one backward pass whose gradients get the factor ``scale`` = n_r / N."""
        self.requests, self.scale, self.started = [], scale, 0
        self.model.gradient_hook = self._layer_done

    def _layer_done(self, layer):
        index = self._first_layers.get(id(layer))
        if index is None:
            return
        self._start(index)
        for request in self.requests:  # let MPI progress the buckets already in flight
            request.Test()

    def _start(self, index):
        _, start, stop = self.buckets[index]
        part = self.grads[start:stop]
        if self.scale != 1.0:
            self.model.store.ops.scale_(part, self.scale)
        self.requests.append(start_allreduce_sum(self.world, part, "a gradient bucket's all-reduce"))
        self.started = index + 1

    def zero(self):
        """A rank with no examples this step contributes zeros (call before any bucket starts)."""
        self.grads[...] = 0
        self.scale = 1.0

    def end(self):
        """Start the buckets backward did not reach (all of them for a rank with no examples this
        step), wait for every one, and disarm the hook."""
        self.model.gradient_hook = None
        for index in range(self.started, len(self.buckets)):
            self._start(index)
        finish(self.world, self.requests, "the gradient all-reduce")
        self.requests = []
