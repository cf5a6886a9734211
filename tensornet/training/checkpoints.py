"""Training checkpoints in a directory: written atomically during ``fit``, the last K kept, and
the newest complete one found (:class:`tensornet.checkpoints.CheckpointDirectory` restores it,
in the middle of an epoch if that is where it was taken).

A checkpoint is a saved model (:mod:`tensornet.models.saving`: weights, optimizer state and step,
schedule, generator states, history; one ``.npz`` with a checksum) plus, when taken inside an
epoch, a :class:`ResumePoint`: the epoch, the batches of it already trained, its example
order and its running loss and metric sums. Resuming from it continues bit for bit as if the
run had never stopped.

Files are ``DIR/ckpt-<optimizer step, 10 digits>.npz``. Each is written to a temporary file in
``DIR``, fsync'ed and renamed into place (then ``DIR`` is fsync'ed), so a SIGKILL or power cut
at any instant leaves every ``ckpt-*.npz`` complete: the previous ones, and the new one only
once it is whole. Temporaries a kill left behind start with ``.`` and are removed by the next
:class:`CheckpointFiles`. Old checkpoints are deleted only after a new one is in place.
"""
from __future__ import annotations

import dataclasses
import os
import re
import warnings

import numpy

from ..io.archive import read_archive

_NAME = re.compile(r"^ckpt-(\d{10})\.npz$")


@dataclasses.dataclass
class ResumePoint:
    """Where an epoch stood when a checkpoint was taken inside it.

    ``epoch`` (0-based) is the epoch in progress, ``batch`` the number of its batches already
    trained, ``samples`` and ``batch_size`` the training set size and batch size (checked on
    resume), ``order`` the epoch's permutation of the examples (None without shuffling), and
    ``totals`` the running sums ``{"loss": float, "metrics": [float, ...], "samples": int}``.
    """

    epoch: int
    batch: int
    samples: int
    batch_size: int
    order: numpy.ndarray | None
    totals: dict

    def header(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "samples": self.samples, "batch_size": self.batch_size,
                "shuffled": self.order is not None, "totals": self.totals}

    @classmethod
    def from_archive(cls, header, arrays, path):
        """The resume point a checkpoint's header and arrays hold, each field checked."""
        def fail(problem):
            raise ValueError(f"{path!r}: malformed resume point in the checkpoint: {problem}")

        def count(key, minimum=0):
            value = header.get(key) if isinstance(header, dict) else None
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                fail(f"{key} is {value!r}, not an int >= {minimum}")
            return value

        def number(value, what):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                fail(f"{what} is {value!r}, not a number")
            return float(value)

        epoch, batch, samples, batch_size = count("epoch"), count("batch"), count("samples", 1), count("batch_size", 1)
        if batch > -(-samples // batch_size):
            fail(f"batch {batch} is past the end of an epoch of {samples} examples in batches of {batch_size} "
                 "(the position is impossible)")
        totals = header.get("totals")
        if not isinstance(totals, dict) or not isinstance(totals.get("metrics"), list):
            fail(f"totals {totals!r} are not {{'loss': ..., 'metrics': [...], 'samples': ...}}")
        sums = {"loss": number(totals.get("loss"), "the loss sum"),
                "metrics": [number(v, "a metric sum") for v in totals["metrics"]],
                "samples": totals.get("samples")}
        if isinstance(sums["samples"], bool) or not isinstance(sums["samples"], int) or sums["samples"] < 0:
            fail(f"the totals' sample count is {sums['samples']!r}")
        shuffled = header.get("shuffled")
        if not isinstance(shuffled, bool):
            fail(f"shuffled is {shuffled!r}, not true or false")
        order = None
        if shuffled:
            order = arrays.get("resume/order")
            if order is None:
                fail("the epoch's example order is missing")
            if order.shape != (samples,) or order.dtype.kind not in "iu" \
                    or not numpy.array_equal(numpy.sort(order), numpy.arange(samples)):
                fail(f"the epoch's example order is not a permutation of {samples} examples")
        return cls(epoch=epoch, batch=batch, samples=samples, batch_size=batch_size, order=order, totals=sums)


class CheckpointFiles:
    """The checkpoint files of one run in ``directory``: :meth:`save` adds one (written by the
    model's ``save_checkpoint``) and deletes all but the newest ``keep``; :meth:`newest` is the
    newest complete one."""

    def __init__(self, directory, keep=3):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an int >= 1; got {keep!r}")
        self.directory = os.fspath(directory)
        self.keep = keep
        os.makedirs(self.directory, exist_ok=True)
        #: Temporaries of interrupted writes removed when this object was made.
        self.removed_temporaries = self._remove_temporaries()

    def _remove_temporaries(self) -> int:
        removed = 0
        for name in os.listdir(self.directory):
            if name.startswith(".ckpt-") and name.endswith(".tmp"):
                try:
                    os.unlink(os.path.join(self.directory, name))
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def path_for(self, step) -> str:
        return os.path.join(self.directory, f"ckpt-{int(step):010d}.npz")

    def paths(self) -> list:
        """Checkpoint files, oldest (lowest optimizer step) first."""
        names = sorted(name for name in os.listdir(self.directory) if _NAME.match(name))
        return [os.path.join(self.directory, name) for name in names]

    def save(self, model, resume_point=None, shards=None) -> str:
        """Write a checkpoint of ``model`` named by its optimizer step, then prune to ``keep``."""
        path = self.path_for(model.optimizer.iterations)
        model.save_checkpoint(path, resume_point, shards)
        for old in self.paths()[:-self.keep]:
            if old != path:
                try:
                    os.unlink(old)
                except FileNotFoundError:
                    pass
        return path

    def newest(self, verify=True):
        """Path of the newest checkpoint whose checksum verifies (None when there is none);
        damaged ones are skipped with a warning."""
        for path in reversed(self.paths()):
            if not verify:
                return path
            try:
                read_archive(path)
            except ValueError as exc:
                warnings.warn(f"skipping damaged checkpoint {path}: {exc}", RuntimeWarning, stacklevel=2)
                continue
            return path
        return None
