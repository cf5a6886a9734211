"""Where an epoch stands: its running loss and metric sums on the device, and its position."""
from __future__ import annotations


class EpochTotals:
    """Device-side running sums of the loss and each metric over an epoch."""

    def __init__(self, ops, metrics):
        self.ops, self.metrics = ops, metrics
        self.loss = ops.zeros((), "float64")
        self.metric_sums = [ops.zeros((), "float64") for _ in metrics]
        self.samples = 0

    def add(self, loss_sum, pred, target, counted=None):
        """Add one batch; ``counted`` = ``(metric index, batch sum)`` for a metric the step
        already computed (the fused softmax cross-entropy's correct count), else None."""
        self.loss += loss_sum
        for i, metric in enumerate(self.metrics):
            if counted is not None and counted[0] == i:
                self.metric_sums[i] += counted[1]
            else:
                self.metric_sums[i] += metric.batch_sum(self.ops, pred, target)
        self.samples += pred.shape[0]

    def state(self) -> dict:
        """The sums as host numbers (what a mid-epoch checkpoint keeps)."""
        return {"loss": self.ops.to_float(self.loss), "metrics": [self.ops.to_float(t) for t in self.metric_sums],
                "samples": self.samples}

    def restore(self, state):
        """Continue from :meth:`state`'s numbers (a resumed epoch reports what an unbroken one would)."""
        if len(state["metrics"]) != len(self.metrics):
            raise ValueError(f"the checkpoint's epoch totals hold {len(state['metrics'])} metrics; the model "
                             f"has {len(self.metrics)}")
        self.loss = self.ops.asarray(float(state["loss"]), "float64")
        self.metric_sums = [self.ops.asarray(float(v), "float64") for v in state["metrics"]]
        self.samples = int(state["samples"])

    def results(self, output_size) -> dict:
        """Mean loss and metrics (this is where the device is read)."""
        n = max(self.samples, 1)
        logs = {"loss": self.ops.to_float(self.loss) / n}
        for metric, total in zip(self.metrics, self.metric_sums):
            logs[metric.name] = self.ops.to_float(total) / max(metric.denominator(self.samples, output_size), 1)
        return logs


class EpochPosition:
    """Where the epoch being trained stands: its number (0-based), the example ``order`` (None
    without shuffling), ``batch`` (batches trained so far), the running ``totals``, and the
    arrays and batch size it draws from."""

    __slots__ = ("epoch", "order", "batch", "totals", "x", "y", "batch_size")

    def __init__(self, epoch, order, batch, totals, x, y, batch_size):
        self.epoch, self.order, self.batch, self.totals = epoch, order, batch, totals
        self.x, self.y, self.batch_size = x, y, batch_size
