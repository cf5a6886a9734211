"""The one mini-batch loop behind ``fit``, ``evaluate`` and ``predict``.

Each epoch: permute the examples with the model's seeded generator, gather each batch on the
backend's device, forward, loss, backward, one optimizer step over the flat parameters. The
last partial batch is trained on. Loss and metric sums accumulate on the device and are read
once per epoch, so a step never waits for the host.
"""
from __future__ import annotations

import functools
import sys
import time

from .backend import get_backend
from .callbacks import BatchLogs, CallbackList, History
from .inputs import (check_positive_int, check_same_length, check_verbose, prepare_inputs,
                     prepare_targets)
from .progress import ProgressLogger, format_logs


def _finishes(loop):
    """Run a public loop, then the backend's ``finish`` (however the loop ends)."""
    @functools.wraps(loop)
    def run(self, *args, **kwargs):
        try:
            return loop(self, *args, **kwargs)
        finally:
            if self.model.ops is not None:
                self.model.ops.finish()
    return run


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
        self._streamed = False

    # ------------------------------------------------------------------ public loops
    @_finishes
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
        data_ops = self._data_ops(x)
        self._streamed = data_ops is not model.ops
        x, y = self._prepare(x, y, "x", "y", ops=data_ops)
        validation = None
        if validation_data is not None:
            validation = self._prepare_validation(validation_data, ops=data_ops)
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

    @_finishes
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
            print(f"{x.shape[0]} samples - {time.perf_counter() - started:.2f}s - " + format_logs(logs),
                  file=sys.stdout, flush=True)
        values = list(logs.values())
        return values if len(values) > 1 else values[0]

    @_finishes
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
        model = self.model
        totals = EpochTotals(model.ops, model.metrics)
        hooks = callback_list.wants_batch_hooks
        for batch, (xb, yb) in enumerate(self._batches(x, y, batch_size, shuffle)):
            if hooks:
                callback_list.batch_begin(batch, {"batch": batch, "size": xb.shape[0]})
            self.train_step(xb, yb, totals)
            if hooks:
                callback_list.batch_end(batch, BatchLogs(batch, xb.shape[0], totals, model.output_shape[-1]))
            if model.stop_training:
                break
        return totals.results(model.output_shape[-1])

    def _batches(self, x, y, batch_size, shuffle):
        """(x, y) batches on the model's device, in the order of a permutation drawn from the
        model's generator (or in order without ``shuffle``).

        Data resident on the device is gathered batch by batch there. Data too large for it
        (kept on the host, see ``_data_ops``) is gathered on the host a chunk of many batches
        at a time into a page-locked buffer and copied over once per chunk; the batches and
        their order are the same either way.
        """
        model, ops = self.model, self.model.ops
        n = x.shape[0]
        source = get_backend("numpy") if self._streamed else ops
        order = source.permutation(model.rng, n) if shuffle else None
        if not self._streamed:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                if order is None:
                    yield x[start:stop], y[start:stop]
                else:
                    index = order[start:stop]
                    yield (ops.take_rows(x, index, out=self._buffer("x", (stop - start,) + x.shape[1:], x.dtype)),
                           ops.take_rows(y, index, out=self._buffer("y", (stop - start,) + y.shape[1:], y.dtype)))
            return
        chunk_rows = self._chunk_rows(x, y, batch_size)
        for chunk_start in range(0, n, chunk_rows):
            chunk_stop = min(chunk_start + chunk_rows, n)
            rows = chunk_stop - chunk_start
            chunk = []
            for tag, array in (("x", x), ("y", y)):
                shape = (rows,) + array.shape[1:]
                if order is None:
                    host = array[chunk_start:chunk_stop]
                else:
                    host = source.take_rows(array, order[chunk_start:chunk_stop],
                                            out=self._host_buffer(tag, shape, array.dtype))
                chunk.append(ops.to_device(host, out=self._buffer("chunk_" + tag, shape, array.dtype)))
            for start in range(0, rows, batch_size):
                yield chunk[0][start:start + batch_size], chunk[1][start:start + batch_size]

    def _chunk_rows(self, x, y, batch_size):
        """Rows per streamed chunk: a whole number of batches filling about a quarter of the
        device budget (two arrays of that size stay allocated)."""
        row_bytes = (x.size // max(x.shape[0], 1)) * x.itemsize + (y.size // max(y.shape[0], 1)) * y.itemsize
        budget = self.model.ops.memory_budget() or row_bytes * x.shape[0]
        return max(batch_size, (budget // 4 // max(row_bytes, 1)) // batch_size * batch_size)

    def _data_ops(self, x):
        """The backend the training arrays are prepared on: the model's, or the host (NumPy)
        when they would take more than the device's ``memory_budget()`` (then ``fit`` streams
        them in chunks)."""
        ops, host = self.model.ops, get_backend("numpy")
        budget = ops.memory_budget()
        already_on_device = ops.is_array(x) and not host.is_array(x)
        if budget is None or already_on_device or not hasattr(x, "size"):
            return ops
        needed = int(x.size) * ops.dtype(self.model.dtype).itemsize
        return host if needed > budget else ops

    def _evaluate_arrays(self, x, y, batch_size):
        model = self.model
        totals = EpochTotals(model.ops, model.metrics)
        for start in range(0, x.shape[0], batch_size):
            stop = min(start + batch_size, x.shape[0])
            xb, yb = self._on_device(x[start:stop]), self._on_device(y[start:stop])
            pred = model.forward(xb, training=False)
            if model.fused_output:
                loss_sum = model.loss.fused_total(model.ops, model.layers[-1].logits, yb)
            else:
                loss_sum = model.loss.total(model.ops, pred, yb)
            totals.add(loss_sum, pred, yb)
        return totals.results(model.output_shape[-1])

    # ------------------------------------------------------------------ helpers
    def _prepare(self, x, y, x_name, y_name, ops=None):
        """Checked arrays on ``ops`` (default: the model's backend)."""
        model = self.model
        ops = ops or model.ops
        x = prepare_inputs(ops, x, model.input_shape, model.dtype, x_name)
        if not model.built:
            model.build(tuple(x.shape[1:]))
        y = prepare_targets(ops, y, model.loss, model.output_shape, model.dtype, y_name)
        check_same_length(x, y, x_name, y_name)
        return x, y

    def _on_device(self, array):
        """``array`` on the model's backend (a copy only when it is held on the host)."""
        ops = self.model.ops
        return array if ops.is_array(array) else ops.to_device(array)

    def _host_buffer(self, tag, shape, dtype):
        key = ("host_" + tag, tuple(shape), str(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = self.model.ops.host_buffer(shape, dtype)
        else:
            # The buffer is about to be refilled, but the last ``to_device`` from it may still be
            # queued: CuPy's ``ndarray.set`` copies asynchronously on the current stream, and from
            # page-locked memory it returns before the copy has run. Wait for it (once per chunk,
            # never per step; a no-op on the CPU).
            self.model.ops.synchronize()
        return buffer

    def _prepare_validation(self, validation_data, ops=None):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a tuple (x_val, y_val); got "
                             f"{type(validation_data).__name__} of length {len(validation_data) if hasattr(validation_data, '__len__') else '?'}")
        return self._prepare(validation_data[0], validation_data[1], "validation_data[0]", "validation_data[1]",
                             ops=ops)

    def _buffer(self, tag, shape, dtype):
        key = (tag, tuple(shape), str(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = self.model.ops.empty(shape, dtype)
        return buffer
