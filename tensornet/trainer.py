"""The one mini-batch loop behind ``fit``, ``evaluate`` and ``predict``.

Each epoch: permute the examples with the model's seeded generator, gather each batch on the
backend's device, forward, loss, backward, one optimizer step over the flat parameters. The
last partial batch is trained on. Loss and metric sums accumulate on the device and are read
once per epoch, so a step never waits for the host.
"""
from __future__ import annotations

import sys
import time

from .callbacks import BatchLogs, CallbackList, History
from .inputs import (check_positive_int, check_same_length, check_verbose, prepare_inputs,
                     prepare_targets)
from .progress import ProgressLogger


class EpochTotals:
    """Device-side running sums of the loss and each metric over an epoch."""

    def __init__(self, ops, metrics):
        self.ops, self.metrics = ops, metrics
        self.loss = ops.zeros((), "float64")
        self.metric_sums = [ops.zeros((), "float64") for _ in metrics]
        self.samples = 0

    def add(self, loss_sum, pred, target):
        self.loss += loss_sum
        for i, metric in enumerate(self.metrics):
            self.metric_sums[i] += metric.batch_sum(self.ops, pred, target)
        self.samples += pred.shape[0]

    def results(self, output_size) -> dict:
        """Mean loss and metrics (this is where the device is read)."""
        n = max(self.samples, 1)
        logs = {"loss": self.ops.to_float(self.loss) / n}
        for metric, total in zip(self.metrics, self.metric_sums):
            logs[metric.name] = self.ops.to_float(total) / max(metric.denominator(self.samples, output_size), 1)
        return logs


class Trainer:
    """Runs a compiled :class:`~tensornet.models.Sequential` over arrays."""

    def __init__(self, model):
        self.model = model
        self._buffers = {}

    # ------------------------------------------------------------------ public loops
    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0):
        model = self.model
        model.require_compiled("fit")
        batch_size = check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        epochs = check_positive_int(epochs, "epochs")
        verbose = check_verbose(verbose)
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, int) or initial_epoch < 0:
            raise ValueError(f"initial_epoch must be an int >= 0; got {initial_epoch!r}")
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be True or False; got {shuffle!r}")
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be a number in [0, 1); got {validation_split!r}")
        x, y = self._prepare(x, y, "x", "y")
        validation = None
        if validation_data is not None:
            validation = self._prepare_validation(validation_data)
        elif validation_split:
            split = int(x.shape[0] * (1.0 - validation_split))
            if split < 1 or split == x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no examples for training or "
                                 f"validation out of {x.shape[0]}")
            x, y, validation = x[:split], y[:split], (x[split:], y[split:])
        if x.shape[0] == 0:
            raise ValueError("x holds no examples to train on")

        history = History()
        steps = -(-x.shape[0] // batch_size)
        params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "samples": x.shape[0],
                  "verbose": verbose}
        progress = [ProgressLogger(verbose)] if verbose else []
        callback_list = CallbackList([history, *progress, *(callbacks or [])], model, params)
        model.history = history
        model.stop_training = False
        logs = {}
        callback_list.call("on_train_begin", {})
        for epoch in range(initial_epoch, epochs):
            callback_list.call("on_epoch_begin", epoch, {})
            logs = self._train_epoch(x, y, batch_size, shuffle, callback_list)
            if validation is not None:
                val_logs = self._evaluate_arrays(*validation, batch_size)
                logs.update({"val_" + key: value for key, value in val_logs.items()})
            callback_list.call("on_epoch_end", epoch, dict(logs))
            if model.stop_training:
                break
        callback_list.call("on_train_end", dict(logs))
        return history

    def evaluate(self, x, y, batch_size=32, verbose=1):
        """[loss, *metrics] (only the loss when there are no metrics), as Keras returns them."""
        model = self.model
        model.require_compiled("evaluate")
        batch_size = check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        verbose = check_verbose(verbose)
        x, y = self._prepare(x, y, "x", "y")
        started = time.perf_counter()
        logs = self._evaluate_arrays(x, y, batch_size)
        if verbose:
            print(f"{x.shape[0]} samples - {time.perf_counter() - started:.2f}s - " + _format_logs(logs),
                  file=sys.stdout, flush=True)
        values = list(logs.values())
        return values if len(values) > 1 else values[0]

    def predict(self, x, batch_size=32, verbose=0):
        """Outputs for every example, batch by batch; NumPy in, NumPy out (device arrays stay on
        the device)."""
        model = self.model
        batch_size = check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        check_verbose(verbose)
        ops = model.ops if model.built else None
        if ops is None:
            from .backend import get_backend

            ops = get_backend()
        keep_on_device = ops.is_array(x) and ops.name != "numpy"
        x_arr = prepare_inputs(ops, x, model.input_shape, model.dtype, "x")
        if not model.built:
            model.build(tuple(x_arr.shape[1:]))
        result = ops.empty((x_arr.shape[0],) + tuple(model.output_shape), model.dtype)
        for start in range(0, x_arr.shape[0], batch_size):
            stop = min(start + batch_size, x_arr.shape[0])
            result[start:stop] = model.forward(x_arr[start:stop], training=False)
        return result if keep_on_device else ops.to_numpy(result)

    # ------------------------------------------------------------------ steps
    def train_step(self, xb, yb, totals):
        """Forward, loss, backward and one optimizer step on one batch."""
        model = self.model
        pred = model.forward(xb, training=True)
        grad = self._buffer("dy", pred.shape, model.dtype)
        if model.fused_output:
            loss_sum = model.loss.fused(model.ops, model.layers[-1].logits, pred, yb, grad)
        else:
            loss_sum = model.loss.total(model.ops, pred, yb)
            model.loss.gradient(model.ops, pred, yb, out=grad)
        totals.add(loss_sum, pred, yb)
        model.backward(grad, through_activation=not model.fused_output)
        model.optimizer.apply(model.store)

    def _train_epoch(self, x, y, batch_size, shuffle, callback_list):
        model, ops = self.model, self.model.ops
        n = x.shape[0]
        order = ops.permutation(model.rng, n) if shuffle else None
        totals = EpochTotals(ops, model.metrics)
        hooks = callback_list.wants_batch_hooks
        for batch, start in enumerate(range(0, n, batch_size)):
            stop = min(start + batch_size, n)
            if order is None:
                xb, yb = x[start:stop], y[start:stop]
            else:
                index = order[start:stop]
                xb = ops.take_rows(x, index, out=self._buffer("x", (stop - start,) + x.shape[1:], x.dtype))
                yb = ops.take_rows(y, index, out=self._buffer("y", (stop - start,) + y.shape[1:], y.dtype))
            if hooks:
                callback_list.batch_begin(batch, {"batch": batch, "size": stop - start})
            self.train_step(xb, yb, totals)
            if hooks:
                callback_list.batch_end(batch, BatchLogs(batch, stop - start, totals, model.output_shape[-1]))
            if model.stop_training:
                break
        return totals.results(model.output_shape[-1])

    def _evaluate_arrays(self, x, y, batch_size):
        model = self.model
        totals = EpochTotals(model.ops, model.metrics)
        for start in range(0, x.shape[0], batch_size):
            stop = min(start + batch_size, x.shape[0])
            xb, yb = x[start:stop], y[start:stop]
            pred = model.forward(xb, training=False)
            if model.fused_output:
                loss_sum = model.loss.fused_total(model.ops, model.layers[-1].logits, yb)
            else:
                loss_sum = model.loss.total(model.ops, pred, yb)
            totals.add(loss_sum, pred, yb)
        return totals.results(model.output_shape[-1])

    # ------------------------------------------------------------------ helpers
    def _prepare(self, x, y, x_name, y_name):
        model = self.model
        x = prepare_inputs(model.ops, x, model.input_shape, model.dtype, x_name)
        if not model.built:
            model.build(tuple(x.shape[1:]))
        y = prepare_targets(model.ops, y, model.loss, model.output_shape, model.dtype, y_name)
        check_same_length(x, y, x_name, y_name)
        return x, y

    def _prepare_validation(self, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a tuple (x_val, y_val); got "
                             f"{type(validation_data).__name__} of length {len(validation_data) if hasattr(validation_data, '__len__') else '?'}")
        return self._prepare(validation_data[0], validation_data[1], "validation_data[0]", "validation_data[1]")

    def _buffer(self, tag, shape, dtype):
        key = (tag, tuple(shape), str(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = self.model.ops.empty(shape, dtype)
        return buffer


def _format_logs(logs):
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())
