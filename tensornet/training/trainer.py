"""The one mini-batch loop behind ``fit``, ``evaluate`` and ``predict``.

Each epoch: permute the examples with the model's seeded generator, gather each batch on the
backend's device, forward, loss, backward, one optimizer step over the flat parameters. The
last partial batch is trained on. Loss and metric sums accumulate on the device and are read
once per epoch, so a step never waits for the host.

Around the steps: a :class:`~tensornet.training.divergence.FiniteGuard` stops the run at the first NaN
or infinite loss or gradient with the model as it was after the last finite step; SIGINT is
honoured at the end of a step when a callback asks for it (checkpoint callbacks do); a run can
start in the middle of an epoch from a checkpoint's :class:`~tensornet.training.checkpoints.ResumePoint`;
running out of device memory raises :class:`~tensornet.errors.DeviceOutOfMemoryError` with a
batch size that fits.
"""
from __future__ import annotations

import functools
import math
import sys
import time
import warnings

from ..backend import get_backend
from ..distributed import current_world, is_root
from .batches import BatchGathering
from .callbacks import BatchLogs, CallbackList, History, TerminateOnNaN
from . import shard_states
from .checkpoints import ResumePoint
from .data_parallel import DataParallel
from .divergence import FiniteGuard
from .epoch import EpochPosition, EpochTotals
from .errors import TrainingInterrupted
from .interrupts import InterruptRequests
from .inputs import check_positive_int, check_same_length, check_verbose
from .memory import out_of_memory_error
from .progress import ProgressLogger, format_logs, print_path_note


def _finishes(loop):
    """Run a public loop between the backend's ``start`` and ``finish`` (however it ends); an
    out-of-memory error inside it is re-raised as :class:`DeviceOutOfMemoryError` after the
    trainer's buffers and the backend's memory pool are released."""
    @functools.wraps(loop)
    def run(self, *args, **kwargs):
        try:
            if self.model.ops is not None:
                self.model.ops.start()
            return loop(self, *args, **kwargs)
        except (MemoryError, RuntimeError) as exc:
            ops = self.model.ops
            if ops is None or not ops.is_out_of_memory(exc):
                raise
            self._buffers.clear()
            raise out_of_memory_error(self.model, loop.__name__, self._batch_size, exc) from exc
        finally:
            if self.model.ops is not None:
                self.model.ops.finish()
    return run


class Trainer(BatchGathering):
    """Runs a compiled model (:class:`~tensornet.models.Model`, ``Sequential`` included) over arrays.

    The model hands the loop one input array and one target array (``model.prepare_x`` /
    ``prepare_y``: a model with several inputs or outputs packs them into one table each, see
    :mod:`tensornet.models.packing`), so shuffling, batching, streaming, data parallelism and
    checkpoints see one array of each."""

    def __init__(self, model):
        self.model = model
        self._buffers = {}
        self._streamed = False
        self._batch_size = None
        #: The epoch being trained (an :class:`EpochPosition`), or None outside ``fit``.
        self.position = None
        self.guard = None
        self._starting_point = None
        #: The step ``fit`` trains through (from the backend's ``training_step``), or None.
        self.step = None
        #: Which step the last ``fit`` ran: ``"compiled"``, or ``"layered (<why not compiled>)"``.
        self.step_path = None
        #: The :class:`DataParallel` run of the ``fit`` in progress under a world of size > 1, else None.
        self.parallel = None

    # ------------------------------------------------------------------ public loops
    @_finishes
    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0, check_finite=True, data_sharded=False):
        model = self.model
        model.require_compiled("fit")
        batch_size = check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        self._batch_size = batch_size
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

        world = current_world()
        own_shard = shard_states.take_own(model, world, data_sharded, x.shape[0])
        resume = self._starting_point = self._take_resume_point(initial_epoch, x.shape[0], batch_size, shuffle)
        self._check_weights_finite()
        self.prepare_step(batch_size)
        if world is not None and world.size > 1:
            self.parallel = DataParallel(self, world, data_sharded)
            self.parallel.start(x.shape[0], batch_size)
            if own_shard is not None:  # this rank's generator, after the broadcast of rank 0's
                model.rng.bit_generator.state = own_shard["generator"]
            self.step_path += " + " + self.parallel.describe()
            check_finite = False  # the all-reduced epoch loss is checked instead (DataParallel.reduce_totals)
            verbose = verbose if world.is_root else 0
        if verbose:
            print_path_note(model.ops)

        history = History()
        steps = self.parallel.steps(batch_size) if self.parallel else -(-x.shape[0] // batch_size)
        samples = self.parallel.samples() if self.parallel else x.shape[0]
        params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "samples": samples,
                  "verbose": verbose}
        progress = [ProgressLogger(verbose)] if verbose else []
        callback_list = CallbackList([history, *progress, *(callbacks or [])], model, params, run=self)
        model.history = history
        model.stop_training = False
        logs = {}
        # TerminateOnNaN asks for Keras' behaviour: stop quietly at a NaN loss, weights as they are.
        keras_nan_stop = any(isinstance(callback, TerminateOnNaN) for callback in callbacks or [])
        self.guard = FiniteGuard(self) if check_finite and not keras_nan_stop else None
        try:
            with InterruptRequests(enabled=callback_list.wants_interrupts) as interrupts:
                callback_list.call("on_train_begin", {})
                for epoch in range(initial_epoch, epochs):
                    callback_list.call("on_epoch_begin", epoch, {})
                    logs = self._train_epoch(epoch, x, y, batch_size, shuffle, callback_list, interrupts,
                                             resume if epoch == initial_epoch else None)
                    if validation is not None:
                        val_logs = self._evaluate_arrays(*validation, batch_size)
                        logs.update({"val_" + key: value for key, value in val_logs.items()})
                    callback_list.call("on_epoch_end", epoch, dict(logs))
                    if model.stop_training:
                        break
                callback_list.call("on_train_end", dict(logs))
        finally:
            self.position = self.guard = self._starting_point = self.step = self.parallel = None
        return history

    @_finishes
    def evaluate(self, x, y, batch_size=32, verbose=1):
        """[loss, *metrics] (only the loss when there are no metrics), as Keras returns them."""
        model = self.model
        model.require_compiled("evaluate")
        batch_size = check_positive_int(32 if batch_size is None else batch_size, "batch_size")
        self._batch_size = batch_size
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
        self._batch_size = batch_size
        check_verbose(verbose)
        ops = model.ops if model.built else None
        if ops is None:
            ops = get_backend()
        keep_on_device = ops.is_array(x) and ops.name != "numpy"
        x_arr = model.prepare_x(ops, x, "x")
        if not model.built:
            model.build(tuple(x_arr.shape[1:]))
        result = ops.empty((x_arr.shape[0],) + tuple(model.output_shape), model.dtype)
        for start in range(0, x_arr.shape[0], batch_size):
            stop = min(start + batch_size, x_arr.shape[0])
            result[start:stop] = model.forward(x_arr[start:stop], training=False)
        return result if keep_on_device else ops.to_numpy(result)

    # ------------------------------------------------------------------ steps
    def prepare_step(self, batch_size):
        """Take the step ``fit`` runs from the backend (inside the loop, after its ``start()``):
        its whole-step kernel where it serves the model, else the layered step
        (:meth:`tensornet.backend.Backend.training_step`); ``compile(jit_compile=True)`` turns
        "not served" into a ValueError."""
        step = self.model.ops.training_step(self.model, batch_size)
        if step.path == "layered" and self.model.jit_compile is True:
            raise ValueError(f"compile(jit_compile=True), but this model cannot train through a whole-step kernel: "
                             f"{step.reason}. Use jit_compile='auto' to fall back to the layered step.")
        self.step = step
        self.step_path = step.path if step.reason is None else f"{step.path} ({step.reason})"

    def train_step(self, xb, yb, totals):
        """Forward, loss, backward and one optimizer step on one batch, then the epoch totals."""
        pred, loss_sum = self.step(xb, yb)
        totals.add(loss_sum, pred, yb, counted=self.model.take_fused_count())

    def checked_step(self, xb, yb):
        """The same step with the loss and then the gradients read on the host before the
        update: returns ``"loss"`` or ``"gradient"`` (and applies nothing) when that one is not
        finite, else None. The divergence guard replays steps with it."""
        model, ops = self.model, self.model.ops
        _, loss_sum = self.step(xb, yb, update=False)
        model.take_fused_count()
        if not math.isfinite(ops.to_float(loss_sum)):
            return "loss"
        if not all(ops.all_finite(grads) for _, grads in model.store.groups.values()):
            return "gradient"
        model.optimizer.apply(model.store)
        return None

    def _train_epoch(self, epoch, x, y, batch_size, shuffle, callback_list, interrupts, resume=None):
        """Train one epoch (from ``resume``'s batch, with its order and totals, when given) and
        return its logs."""
        model = self.model
        totals = EpochTotals(model.ops, model.metrics)
        if resume is not None:
            order = None if resume.order is None else self._order_on(resume.order)
            if self.parallel is None or is_root():  # (a checkpoint's totals are the sums over every rank)
                totals.restore(resume.totals)
            first = resume.batch
        else:
            order = self._draw_order(x.shape[0]) if shuffle else None
            first = 0
        position = self.position = EpochPosition(epoch, order, first, totals, x, y, batch_size)
        if self.guard is not None:
            self.guard.mark()
        hooks = callback_list.wants_batch_hooks
        if self.parallel is None:
            batches = ((b, xb, yb, None, None) for b, (xb, yb) in
                       enumerate(self._batches(x, y, batch_size, order, first), start=first))
        else:
            batches = self.parallel.batches(x, y, batch_size, order, first)
        for batch, xb, yb, share, total in batches:
            size = xb.shape[0] if total is None else total  # (a data-parallel step counts the global batch)
            if hooks:
                callback_list.batch_begin(batch, {"batch": batch, "size": size})
            if self.parallel is None:
                self.train_step(xb, yb, totals)
            else:
                self.parallel.train_step(xb, yb, share, total, totals)
            position.batch = batch + 1
            if self.guard is not None:
                self.guard.after_step()
            if hooks:
                callback_list.batch_end(batch, BatchLogs(batch, size, totals, model.output_shape[-1]))
            if interrupts.requested if self.parallel is None else self.parallel.any_rank_interrupted(interrupts):
                self._interrupt(callback_list, epoch, batch)
            if model.stop_training:
                break
        if self.guard is not None:
            self.guard.verify()
        if self.parallel is not None:
            self.parallel.end_epoch(totals)
        return totals.results(model.output_shape[-1])

    def _interrupt(self, callback_list, epoch, batch):
        """SIGINT arrived during the step just finished: let callbacks write their checkpoints
        (after a divergence check), then stop ``fit`` with :class:`TrainingInterrupted`."""
        if self.guard is not None:
            self.guard.verify()
        written = [path for path in callback_list.call_interrupt(epoch, batch) if path]
        step = self.model.optimizer.iterations
        where = f"epoch {epoch + 1}, batch {batch + 1} (optimizer step {step})"
        saved = ("; checkpoint written to " + ", ".join(map(str, written))) if written else \
            "; no callback wrote a checkpoint"
        raise TrainingInterrupted(f"training interrupted by SIGINT after {where}{saved}", epoch=epoch, batch=batch,
                                  step=step, checkpoints=written)

    def checkpoint_position(self, inside_epoch):
        """What a checkpoint written now records of the run (the ``Checkpoints`` callback calls it
        as ``self.run.checkpoint_position``): first the divergence guard's check, so only finite
        states are written; then, ``inside_epoch``, the :class:`ResumePoint` of where the epoch
        stands, else None."""
        if self.guard is not None and self.position is not None:
            self.guard.verify()
        return self.resume_point() if inside_epoch else None

    def checkpoint_shards(self, inside_epoch):
        """Every rank's own resume state in a data-sharded fit, gathered for a checkpoint (a
        collective; None otherwise): see :mod:`tensornet.training.shard_states`."""
        return shard_states.gather(self, inside_epoch)

    def resume_point(self):
        """Where training stands now, as a checkpoint keeps it (see :mod:`tensornet.training.checkpoints`)."""
        position = self.position
        if position is None:  # before the first epoch: where this fit starts
            return self._starting_point
        order = None if position.order is None else self.model.ops.to_numpy(position.order)
        totals = (position.totals.state() if self.parallel is None
                  else self.parallel.global_totals_state(position.totals))
        return ResumePoint(epoch=position.epoch, batch=position.batch, samples=position.x.shape[0],
                           batch_size=position.batch_size, order=order, totals=totals)

    def _take_resume_point(self, initial_epoch, samples, batch_size, shuffle):
        """The model's pending mid-epoch resume point (set by loading a checkpoint), checked
        against this ``fit`` call: consumed when used or dropped with a warning, kept when the
        call does not match it (so a corrected call can still continue it)."""
        resume = getattr(self.model, "resume_point", None)
        if resume is None:
            return None
        if resume.epoch != initial_epoch:
            self.model.resume_point = None
            warnings.warn(f"the model was restored in the middle of epoch {resume.epoch + 1} (batch {resume.batch}); "
                          f"fit(initial_epoch={initial_epoch}) starts elsewhere, so the rest of that epoch is "
                          f"dropped. Pass initial_epoch=model.epochs_completed ({resume.epoch}) to continue it.",
                          RuntimeWarning, stacklevel=4)
            return None
        if resume.samples != samples or resume.batch_size != batch_size:
            raise ValueError(f"the checkpoint was taken while training on {resume.samples} examples in batches of "
                             f"{resume.batch_size}; this fit has {samples} examples in batches of {batch_size}. "
                             "Resume with the same data, validation split and batch size.")
        if (resume.order is not None) != bool(shuffle):
            raise ValueError(f"the checkpoint was taken with shuffle={resume.order is not None}; this fit has "
                             f"shuffle={shuffle}")
        self.model.resume_point = None
        return resume

    def _check_weights_finite(self):
        ops = self.model.ops
        for params, _ in self.model.store.groups.values():
            if not ops.all_finite(params):
                raise ValueError("the model's weights hold NaN or infinite values before training starts: "
                                 "rebuild the model or load finite weights")

    def _evaluate_arrays(self, x, y, batch_size):
        model = self.model
        totals = EpochTotals(model.ops, model.metrics)
        for start in range(0, x.shape[0], batch_size):
            stop = min(start + batch_size, x.shape[0])
            xb, yb = self._on_device(x[start:stop]), self._on_device(y[start:stop])
            pred = model.forward(xb, training=False)
            totals.add(model.evaluation_loss(pred, yb), pred, yb)
        return totals.results(model.output_shape[-1])

    # ------------------------------------------------------------------ helpers
    def _prepare(self, x, y, x_name, y_name, ops=None):
        """Checked arrays on ``ops`` (default: the model's backend)."""
        model = self.model
        ops = ops or model.ops
        x = model.prepare_x(ops, x, x_name)
        if not model.built:
            model.build(tuple(x.shape[1:]))
        y = model.prepare_y(ops, y, y_name)
        check_same_length(x, y, x_name, y_name)
        return x, y

    def _prepare_validation(self, validation_data, ops=None):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a tuple (x_val, y_val); got "
                             f"{type(validation_data).__name__} of length {len(validation_data) if hasattr(validation_data, '__len__') else '?'}")
        return self._prepare(validation_data[0], validation_data[1], "validation_data[0]", "validation_data[1]",
                             ops=ops)
