"""A model's outputs as training sees them: each output's loss, weight and metrics.

Total loss = sum_i loss_weights[i] * loss_i, each loss_i the batch mean of output i's loss, so
dL/d(output i) = loss_weights[i] * d(loss_i)/d(output i); where output i is a softmax (sigmoid)
read by nothing else and loss_i the matching cross-entropy, the gradient with respect to its
logits is loss_weights[i] * (p - t) / N, computed directly.

``compile`` takes, as Keras: one loss for every output, a list (in output order) or a dict keyed
by output name; ``loss_weights`` as a list or dict (default 1 each); ``metrics`` as a list for
every output, a list of lists, or a dict ``{name: [...]}``. With several outputs the History keys
are Keras': ``loss`` (the weighted total), ``<output>_loss`` for each, then ``<output>_<metric>``.
"""
from __future__ import annotations

from ..nn import losses as losses_module
from ..nn import metrics as metrics_module


class Head:
    """One output: ``name``, per-example ``shape``, ``loss``, ``weight``, ``metric_ids``, its
    ``metrics`` (resolved at compile), ``fused`` (the activation fused with the loss, or None),
    ``step``, and the last batch's ``loss_sum``, ``pred`` and ``target``."""

    def __init__(self, name, shape, loss, weight, metric_ids):
        self.name, self.shape, self.loss, self.weight = name, tuple(shape), loss, float(weight)
        self.metric_ids = list(metric_ids)
        self.metrics = [metrics_module.get(m, loss, self.shape[-1]) for m in self.metric_ids]
        self.fused = None
        #: The engine step that makes this output (its call's ``logits`` feed a fused loss), or None.
        self.step = None
        self.loss_sum = self.pred = self.target = None

    @property
    def target_shape(self):
        """The per-example shape of this output's targets (() for integer labels)."""
        return () if self.loss.target_kind == "sparse" else self.shape


class HeadLoss(metrics_module.Metric):
    """``<output>_loss``: the output's own loss (unweighted), as the last step computed it."""

    def __init__(self, head):
        self.head, self.name = head, f"{head.name}_loss"

    def batch_sum(self, ops, pred, target):
        return self.head.loss_sum


class HeadMetric(metrics_module.Metric):
    """``<output>_<metric>``: a metric of one output, on that output's predictions and targets."""

    def __init__(self, head, metric):
        self.head, self.metric, self.name = head, metric, f"{head.name}_{metric.name}"
        self.kind = None  # never counted by the fused loss (that serves single-output models)

    def batch_sum(self, ops, pred, target):
        return self.metric.batch_sum(ops, self.head.pred, self.head.target)

    def denominator(self, samples, output_size):
        return self.metric.denominator(samples, self.head.shape[-1])


def _per_output(value, names, argument, default):
    """``value`` spread over the outputs ``names``: one value for all, a list, or a dict."""
    if isinstance(value, dict):
        unknown = [key for key in value if key not in names]
        if unknown:
            raise ValueError(f"compile({argument}=...) names {unknown}, which are not outputs of the model; "
                             f"its outputs are {names}")
        if default is None and len(value) != len(names):
            missing = [n for n in names if n not in value]
            raise ValueError(f"compile({argument}=...) gives nothing for output(s) {missing}")
        return [value.get(name, default) for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"compile({argument}=...) lists {len(value)} entries for a model with {len(names)} "
                             f"output(s) {names}")
        return list(value)
    return [value for _ in names]


def make_heads(names, shapes, loss, loss_weights, metrics):
    """The :class:`Head` of each output from ``compile``'s arguments (checked, with clear errors)."""
    if loss is None:
        raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'")
    losses = [losses_module.get(item) for item in _per_output(loss, names, "loss", None)]
    weights = _per_output(1.0 if loss_weights is None else loss_weights, names, "loss_weights", 1.0)
    for name, weight in zip(names, weights):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 or weight == float("inf"):
            raise ValueError(f"loss_weights for output {name!r} must be a finite number >= 0; got {weight!r}")
    if metrics is None:
        per_output = [[] for _ in names]
    elif isinstance(metrics, dict):
        per_output = [m if isinstance(m, (list, tuple)) else [m] for m in _per_output(metrics, names, "metrics", [])]
    elif isinstance(metrics, (list, tuple)):
        nested = len(names) > 1 and len(metrics) == len(names) and all(isinstance(m, (list, tuple)) for m in metrics)
        per_output = [list(m) for m in metrics] if nested else [list(metrics) for _ in names]
    else:
        raise TypeError(f"metrics must be a list of metric names (or a dict by output); got {type(metrics).__name__}")
    return [Head(name, shape, item, weight, ids)
            for name, shape, item, weight, ids in zip(names, shapes, losses, weights, per_output)]


def epoch_metrics(heads):
    """What the epoch totals accumulate: a single output's metrics as they are; with several
    outputs each output's loss, then each output's metrics, named after the output."""
    if len(heads) == 1:
        return list(heads[0].metrics)
    return [HeadLoss(head) for head in heads] + [HeadMetric(head, m) for head in heads for m in head.metrics]
