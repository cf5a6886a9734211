"""The reference backend: every operation the stack needs, written once against ``self.xp``.

A backend is an object with an array module ``xp`` (NumPy or CuPy) and methods for the
forward / backward pairs of the training loop. Layers, losses, optimizers and the trainer
call these methods and never import an array library themselves. Subclasses set ``xp`` and
override a method only where they have something faster (a fused kernel), falling back to
this reference (``super()``) where the kernel does not apply; the signatures stay those of
this class (``tests/test_backend_signatures.py`` checks it).

The operations come in families, one mixin each, composed into :class:`Backend`:
:class:`.array_ops.ArrayOps` (arrays, random draws, products, batch normalization, reductions),
:class:`.activation_ops.ActivationOps`, :class:`.loss_ops.LossOps` (losses, fused output
losses, accuracy), :class:`.optimizer_ops.OptimizerOps`, :class:`.merge_ops.MergeOps` (graph
models' merges) and :class:`.conv_ops.ConvOps` (im2col, convolution, pooling). This class adds the device's
memory, the loop's lifecycle and the training step.

Conventions:
- ``out=`` is an optional preallocated array the result is written into (and returned);
  temporaries of the hot paths live in :meth:`Backend.scratch` buffers, so a training step
  allocates no large array.
- Activation backward functions take the activation's *output* ``y`` (every supported
  activation's derivative is a function of its output), so forward may run in place.
- Loss functions return the *sum over the batch* of per-example losses as a 0-d array on
  the device (no host synchronisation); their gradients are of the *batch mean*.
- Optimizer updates modify the flat parameter and state buffers in place.
"""
from __future__ import annotations

import os

import numpy

from .activation_ops import ActivationOps
from .array_ops import ArrayOps
from .conv_ops import ConvOps
from .loss_ops import EPSILON, LossOps
from .merge_ops import MergeOps
from .optimizer_ops import OptimizerOps
from .training_step import LayeredStep

__all__ = ["Backend", "EPSILON"]


class Backend(ArrayOps, ActivationOps, LossOps, OptimizerOps, MergeOps, ConvOps):
    """Reference implementation of every operation, on the array module ``xp``."""

    name = "base"
    xp = numpy
    #: Parameter dtypes this backend trains; ``compile`` refuses any other, naming it.
    parameter_dtypes = ("float16", "float32", "float64")

    def __init__(self):
        self._scratch_buffers = {}

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"

    def check_parameter_dtype(self, dtype) -> None:
        """Raise ValueError when this backend cannot train parameters of ``dtype``."""
        name = getattr(dtype, "name", None) or str(dtype)
        if name not in self.parameter_dtypes:
            raise ValueError(f"the {self.name} backend trains {', '.join(self.parameter_dtypes)} parameters; "
                             f"this model's dtype is {name}: build it with dtype='float32' (the default) "
                             "or choose a backend that supports it")

    # ------------------------------------------------------------------ memory
    def scratch(self, key, shape, dtype):
        """A reusable work buffer identified by ``key``; reallocated only when shape/dtype change."""
        buffer = self._scratch_buffers.get(key)
        if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype:
            buffer = self.lasting_zeros(shape, dtype)
            self._scratch_buffers[key] = buffer
        return buffer

    def memory_budget(self):
        """Bytes of training data ``fit`` may keep resident on this backend's device; ``None``
        means no limit (the CPU). Larger data sets are streamed in chunks."""
        return None

    def is_out_of_memory(self, exc) -> bool:
        """True when ``exc`` means the device (here: the host) ran out of memory."""
        return isinstance(exc, MemoryError)

    def release_memory(self):
        """Free what this backend keeps cached (scratch buffers; a GPU backend also empties
        its memory pools), so the process can go on after running out of memory."""
        self._scratch_buffers = {}

    def free_memory(self):
        """Bytes of memory available for new arrays now (None when it cannot be told)."""
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None

    def host_buffer(self, shape, dtype="float32"):
        """A host array to stage transfers through (page-locked on a GPU backend)."""
        return numpy.empty(shape, dtype=dtype)

    def to_device(self, x, out=None):
        """Copy the host array ``x`` to this backend (into ``out`` when given)."""
        if out is None:
            return self.asarray(x)
        out[...] = x
        return out

    # ------------------------------------------------------------------ the loop
    def synchronize(self):
        """Wait for queued device work to finish (a no-op on the CPU)."""

    def start(self):
        """Called when ``fit``, ``evaluate`` or ``predict`` begins: from here until :meth:`finish`
        the backend may change process-wide settings for speed (none here)."""

    def finish(self):
        """Called when ``fit``, ``evaluate`` or ``predict`` returns: undo any process-wide setting
        the backend made for speed during the loop (none here)."""

    def training_step(self, model, batch_size):
        """The step ``fit`` trains ``model`` through in batches of ``batch_size``: here the layered
        step (:class:`.training_step.LayeredStep`: forward through each layer, back-propagation,
        one optimizer update over the flat buffers), called as ``step(x, y, update=True)`` ->
        ``(predictions, loss sum)``. A backend with a faster whole-step kernel overrides this one
        method for the models it serves and returns ``super().training_step(...)`` for the rest."""
        return LayeredStep(model, reason=f"the {self.name} backend has no whole-step kernel")

    def faster_path_note(self):
        """One line for ``fit`` to print when a missing package or a setting keeps this backend
        off its fastest path (with the command that gets it), else None."""
        return None

    def device_info(self) -> dict:
        """A description of the device this backend computes on."""
        import platform

        return {"device": "cpu", "processor": platform.processor() or platform.machine()}
