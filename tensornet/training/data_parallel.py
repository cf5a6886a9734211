"""Data-parallel ``fit`` over a world of K ranks (:mod:`tensornet.distributed`).

Each global batch of B examples is split into K contiguous shares, rank r taking rows
[r B / K, (r + 1) B / K) (floor), so the shares differ by at most one example and the last,
partial batch is split the same way. With ``data_sharded=True`` each rank holds its own rows and
takes its share of B from them at every step; a rank whose rows are used up contributes none.

One step on rank r with n_r of the step's N examples: forward and backward give g_r, the
gradient of the mean loss over the rank's n_r examples; the flat gradient buffer is scaled by
n_r / N and summed over ranks by one all-reduce, giving

    g = sum_r (n_r / N) g_r = (1 / N) sum_i dL_i/dw,

the gradient of the mean over the global batch, exactly what one process computes (up to the
order of the float32 sums); every rank then applies the same optimizer step to the same weights.
At the start rank 0's weights, optimizer state and generator are broadcast. Loss and metric
sums are all-reduced at each epoch's end (and when a checkpoint records them), so the logs, the
History and every callback's decisions are the same on every rank.

Inside a step, ``BatchNormalization(synchronized=True)`` layers sum their batch statistics over
the ranks (:mod:`.synchronized_statistics`), and Dropout layers draw from generators keyed by
(seed, layer, rank, step), so masks differ per rank and resume with the step count.
"""
from __future__ import annotations

import math

from ..backend.training_step import LayeredStep
from ..distributed import DistributedError
from ..distributed.collectives import allgather_int, allreduce_floats, allreduce_sum_, broadcast_, broadcast_object
from ..distributed.nccl import NcclCollectives
from .gradient_buckets import GradientBuckets
from .synchronized_statistics import SynchronizedStatistics


def share(rows, rank, size):
    """Rank ``rank``'s [start, stop) of ``rows`` split in ``size`` contiguous shares (floor bounds)."""
    return rows * rank // size, rows * (rank + 1) // size


class DataParallel:
    """What :class:`~tensornet.training.trainer.Trainer` runs through under a world of size > 1."""

    def __init__(self, trainer, world, data_sharded):
        self.trainer, self.world, self.data_sharded = trainer, world, bool(data_sharded)
        self.rows = None
        self.buckets = None
        self._layered = None
        self._device = None  # NCCL collectives when the model is on the CuPy backend
        self.statistics = None  # the sums over ranks of synchronised BatchNormalization layers
        self._dropout = []  # (Dropout layer, its generator's seed key without rank and step)

    # ------------------------------------------------------------------ start of fit
    def start(self, rows, batch_size):
        """Check that every rank runs the same fit, then broadcast rank 0's weights, optimizer
        state and generator; find the Dropout layers (a generator per rank and step) and the
        synchronised BatchNormalization layers."""
        world, model = self.world, self.trainer.model
        self._device = None
        if model.ops.name == "cupy":
            if world.nccl is None:
                world.nccl = NcclCollectives(world)
            self._device = world.nccl
        elif model.ops.name != "numpy":
            raise DistributedError(f"data-parallel fit runs on the NumPy and CuPy backends; this model is on "
                                   f"{model.ops.name!r}")
        self.rows = allgather_int(world, rows, "the start of fit (examples per rank)")
        if not self.data_sharded and len(set(self.rows)) != 1:
            raise DistributedError(f"the ranks passed different numbers of examples {self.rows}; pass the same "
                                   "arrays on every rank, or fit(..., data_sharded=True) with each rank's own part")
        sizes = allgather_int(world, batch_size, "the start of fit (batch size)")
        if len(set(sizes)) != 1:
            raise DistributedError(f"the ranks passed different batch sizes {sizes}")
        if self.data_sharded and batch_size < world.size:
            raise DistributedError(f"data_sharded=True needs batch_size >= the number of ranks ({world.size}); "
                                   f"got {batch_size}")
        for params, _ in model.store.groups.values():
            if self._device is not None:
                self._device.broadcast_(params)
            else:
                broadcast_(world, params, what="the broadcast of rank 0's weights")
        optimizer = model.optimizer
        if not optimizer.state:
            optimizer.build(model.store)
        state = broadcast_object(world, optimizer.get_state(model.ops), what="the broadcast of the optimizer state")
        optimizer.set_state(model.ops, state)
        rng = broadcast_object(world, model.rng.bit_generator.state, what="the broadcast of the generator")
        model.rng.bit_generator.state = rng
        keys = broadcast_object(world, [key for _, key in self._dropout_keys(model)],
                                what="the broadcast of the Dropout seeds")
        self._dropout = [(layer, key) for (layer, _), key in zip(self._dropout_keys(model), keys)]
        self.statistics = SynchronizedStatistics(world, model, self._device)
        if world.bucket_bytes is not None and len(model.store.groups) == 1 and self._device is None:
            self.buckets = GradientBuckets(world, model, world.bucket_bytes)
            self._layered = LayeredStep(model)

    def describe(self):
        """How gradients cross the ranks (appended to ``fit``'s step path)."""
        if self._device is not None:
            return f"one NCCL all-reduce of the flat gradient buffer per step over {self.world.size} GPUs"
        if self.buckets is None:
            return f"one all-reduce of the flat gradient buffer per step over {self.world.size} ranks"
        return (f"layered step with the all-reduce in {len(self.buckets.buckets)} buckets overlapped with "
                f"backward over {self.world.size} ranks")

    @staticmethod
    def _dropout_keys(model):
        """(layer, (seed, layer index)) of every Dropout layer: the layer's own seed, else the
        model's (rank 0's seeds are used on every rank, as its weights are)."""
        keys = []
        for index, layer in enumerate(model.layers):
            if not hasattr(layer, "rng") or not hasattr(layer, "rate"):
                continue
            seed = getattr(layer, "seed", None)
            if seed is None:
                seed = model.seed if model.seed is not None else 0
            keys.append((layer, (int(seed), index)))
        return keys

    def _seed_step(self):
        """Dropout masks differ per rank and repeat from the seed: at optimizer step t, rank r's
        Dropout layer i draws from a generator seeded (rank 0's seed, i, r, t). The masks then
        depend only on the seed, the rank and the step count a checkpoint keeps, so a run resumed
        from any checkpoint under the same number of ranks draws the masks the uninterrupted run
        drew."""
        if not self._dropout:
            return
        ops, step, rank = self.trainer.model.ops, int(self.trainer.model.optimizer.iterations), self.world.rank
        for layer, (seed, index) in self._dropout:
            layer.rng = ops.rng([seed, index, rank, step])

    # ------------------------------------------------------------------ batches and steps
    def steps(self, batch_size):
        """Steps per epoch (the same on every rank)."""
        if not self.data_sharded:
            return -(-self.rows[0] // batch_size)
        return max(-(-rows // (stop - start)) for rank, rows in enumerate(self.rows)
                   for start, stop in [share(batch_size, rank, self.world.size)])

    def samples(self):
        """Examples of an epoch over every rank (each rank's own rows summed with ``data_sharded``)."""
        return sum(self.rows) if self.data_sharded else self.rows[0]

    def step_counts(self, step, batch_size):
        """(this rank's examples, all ranks' examples) at ``step`` of an epoch."""
        size, rank = self.world.size, self.world.rank
        if not self.data_sharded:
            begin = step * batch_size
            rows = min(batch_size, self.rows[0] - begin)
            start, stop = share(rows, rank, size)
            return stop - start, rows
        counts = []
        for r, rows in enumerate(self.rows):
            start, stop = share(batch_size, r, size)
            counts.append(max(0, min(stop - start, rows - step * (stop - start))))
        return counts[rank], sum(counts)

    def batches(self, x, y, batch_size, order, first):
        """(step, this rank's x and y rows, n_r, N) for every step of the epoch from ``first``."""
        trainer = self.trainer
        if not self.data_sharded:
            for step, (xb, yb) in enumerate(trainer._batches(x, y, batch_size, order, first), start=first):
                start, stop = share(xb.shape[0], self.world.rank, self.world.size)
                yield step, xb[start:stop], yb[start:stop], stop - start, xb.shape[0]
            return
        start, stop = share(batch_size, self.world.rank, self.world.size)
        local = iter(trainer._batches(x, y, stop - start, order, first))
        for step in range(first, self.steps(batch_size)):
            n, total = self.step_counts(step, batch_size)
            xb, yb = next(local) if n else (x[:0], y[:0])
            yield step, xb, yb, n, total

    def train_step(self, xb, yb, n, total, totals):
        """This rank's gradient of its mean, scaled by n_r / N, summed over ranks by one all-reduce
        of the flat buffer, then the optimizer step (the same on every rank)."""
        model = self.trainer.model
        self._seed_step()
        self.statistics.arm()
        try:
            pred, loss_sum = self._gradients(xb, yb, n, total)
        finally:
            self.statistics.disarm()
        model.optimizer.apply(model.store)
        if n:
            totals.add(loss_sum, pred, yb)

    def _gradients(self, xb, yb, n, total):
        """Forward and backward on this rank's rows, then the gradient summed over the ranks in
        the flat buffer: ``(predictions, loss sum)``, both None on a rank without rows."""
        trainer = self.trainer
        model, ops = trainer.model, trainer.model.ops
        pred = loss_sum = None
        if self.buckets is not None:
            self.buckets.begin(n / total if n else 1.0)
            try:
                if n:
                    pred, loss_sum = self._layered(xb, yb, update=False)
                else:  # zeroed before the hook starts any bucket's all-reduce
                    self.buckets.zero()
                    if self.statistics:
                        self.statistics.take_part_without_rows()
            finally:
                self.buckets.end()
            return pred, loss_sum
        if n:
            pred, loss_sum = trainer.step(xb, yb, update=False)
        elif self.statistics:
            self.statistics.take_part_without_rows()
        for _, grads in model.store.groups.values():
            if n:
                ops.scale_(grads, n / total)
            else:
                grads[...] = 0
            if self._device is not None:
                self._device.allreduce_sum_(grads)
            else:
                allreduce_sum_(self.world, grads, "the gradient all-reduce")
        return pred, loss_sum

    def any_rank_interrupted(self, interrupts):
        """Whether SIGINT reached any rank during the step just finished (a collective, made at
        every step only while checkpoint callbacks take interrupts): every rank then stops after
        the same step, and the checkpoint's sums over the ranks meet."""
        if not interrupts.enabled:
            return False
        flag = allreduce_floats(self.world, [1.0 if interrupts.requested else 0.0], "the check for an interrupt")
        return flag[0] > 0

    # ------------------------------------------------------------------ end of an epoch
    def end_epoch(self, totals):
        """At an epoch's end: the totals summed over ranks, and rank 0's layer statistics
        (BatchNormalization's moving mean and variance, which each rank keeps from its own batches
        during the epoch) on every rank, as DDP broadcasts buffers, so validation, History and
        every callback see one model."""
        self.reduce_totals(totals)
        model = self.trainer.model
        states = {index: layer.get_state_arrays() for index, layer in enumerate(model.layers)}
        states = {index: state for index, state in states.items() if state}
        if states:
            states = broadcast_object(self.world, states, what="the broadcast of rank 0's layer statistics")
            for index, state in states.items():
                model.layers[index].set_state_arrays(state)

    def reduce_totals(self, totals):
        """Replace the rank's loss and metric sums by their sums over every rank (at an epoch's end)."""
        values = allreduce_floats(self.world, [totals.ops.to_float(totals.loss),
                                               *[totals.ops.to_float(t) for t in totals.metric_sums],
                                               totals.samples])
        totals.loss = totals.ops.asarray(values[0], "float64")
        totals.metric_sums = [totals.ops.asarray(v, "float64") for v in values[1:-1]]
        totals.samples = int(round(values[-1]))
        if not math.isfinite(values[0]):
            from .errors import DivergenceError

            raise DivergenceError("the loss summed over the ranks is not finite: training diverged")

    def global_totals_state(self, totals):
        """The epoch's totals summed over ranks, as a checkpoint records them (a collective)."""
        values = allreduce_floats(self.world, [totals.ops.to_float(totals.loss),
                                               *[totals.ops.to_float(t) for t in totals.metric_sums],
                                               totals.samples])
        return {"loss": values[0], "metrics": values[1:-1], "samples": int(round(values[-1]))}
