"""What every model offers beside its structure: training loops, weights, files, summary, layer
access (Keras' names and signatures)."""
from __future__ import annotations

import os

from . import saving
from .summary import dot_lines, summary_lines


class ModelAPI:
    """The user-facing methods :class:`~tensornet.models.Model` (and so ``Sequential``) share."""

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0, check_finite=True, data_sharded=False):
        """Train for ``epochs`` (from ``initial_epoch``) on shuffled mini-batches; returns a History.

        ``x`` and ``y`` (and ``validation_data``'s) are arrays, or for a model with several
        inputs (outputs) lists in order or dicts keyed by name. With ``check_finite`` (the
        default) a NaN or infinite loss or gradient stops training with
        :class:`~tensornet.errors.DivergenceError`, the model put back to its state after the last
        finite step (see :mod:`tensornet.training.divergence`). A model loaded from a checkpoint
        taken inside an epoch continues that epoch when ``initial_epoch`` is its
        ``epochs_completed``.

        After :func:`tensornet.distributed.init` under ``mpirun -n K``, ``batch_size`` is the global
        batch split across the K ranks (see :mod:`tensornet.training.data_parallel`); every rank
        passes the same arrays, or with ``data_sharded=True`` its own part of the data."""
        return self._trainer.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                                 callbacks=callbacks, validation_split=validation_split,
                                 validation_data=validation_data, shuffle=shuffle, initial_epoch=initial_epoch,
                                 check_finite=check_finite, data_sharded=data_sharded)

    @property
    def step_path(self):
        """Which training step the last ``fit`` ran: ``"compiled"`` (one backend call per step,
        see ``compile(jit_compile=...)``), ``"layered (<why not compiled>)"``, or None before any."""
        return self._trainer.step_path

    def evaluate(self, x=None, y=None, batch_size=None, verbose=1):
        """[loss, *metrics] on (x, y) (a scalar loss when there are no metrics); with several
        outputs [loss, <output>_loss..., <output>_<metric>...] as Keras orders them."""
        return self._trainer.evaluate(x, y, batch_size=batch_size, verbose=verbose)

    def predict(self, x, batch_size=None, verbose=0):
        """Model outputs for ``x``, computed in batches."""
        return self._trainer.predict(x, batch_size=batch_size, verbose=verbose)

    def __call__(self, x):
        return self.predict(x)

    # ------------------------------------------------------------------ layers
    def get_layer(self, name=None, index=None):
        """The layer called ``name`` (or at position ``index`` of ``layers``), as Keras."""
        if (name is None) == (index is None):
            raise ValueError("get_layer takes exactly one of name= or index=")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int) or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer(index={index!r}): the model has {len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r} in model {self.name!r}; its layers are "
                         f"{[layer.name for layer in self.layers]}")

    # ------------------------------------------------------------------ weights
    def count_params(self) -> int:
        """Trainable parameters, each layer counted once however often it is called."""
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self):
        """Copies of every weight as NumPy arrays, in layer order (Dense: kernel (in, out), bias)."""
        self._require_built("get_weights")
        return [self.ops.to_numpy(w).copy() for _, _, w, _ in self.store.views()]

    def set_weights(self, weights):
        """Set every weight from a list like ``get_weights()`` returns (shapes must match)."""
        self._require_built("set_weights")
        views = list(self.store.views())
        weights = list(weights)
        if len(weights) != len(views):
            raise ValueError(f"set_weights expects {len(views)} arrays; got {len(weights)}")
        self._assign_weights(views, weights)

    def _assign_weights(self, views, weights):
        """Copy each array of ``weights`` into the matching store view (shapes checked)."""
        for (layer, name, view, _), value in zip(views, weights):
            value = self.ops.asarray(self.ops.to_numpy(value) if not self.ops.is_array(value) else value)
            if tuple(value.shape) != tuple(view.shape):
                raise ValueError(f"set_weights: {layer.name}/{name} must have shape {tuple(view.shape)}; "
                                 f"got {tuple(value.shape)}")
            view[...] = value

    def _require_built(self, what):
        if not self.built:
            raise RuntimeError(f"{what}() needs a built model: give the first layer input_shape=... or "
                               "call build(input_shape) or fit first")

    # ------------------------------------------------------------------ saving
    def save(self, path, overwrite=True, include_optimizer=True):
        """Write the model to ``path`` (architecture -- for a graph model its topology --, weights,
        optimizer state and step, schedule, random-generator states, epochs completed, history):
        one ``.npz`` file with a JSON header and a checksum, written atomically; nothing in it
        executes on load. See :mod:`tensornet.models.saving` and :func:`tensornet.models.load_model`."""
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path!r} exists and overwrite=False")
        saving.save_model(self, path, include_optimizer=include_optimizer)

    def save_checkpoint(self, path, resume_point=None, shards=None):
        """Write what :meth:`save` writes plus ``resume_point`` (where an epoch stood, from the
        training loop) and ``shards`` (each rank's resume state of a data-sharded fit) to ``path``
        atomically: the ``Checkpoints`` callback's file."""
        return saving.save_checkpoint(self, path, resume_point, shards)

    def save_weights(self, path):
        """Write only the weights (same file format as ``save``)."""
        saving.save_weights(self, path)

    def load_weights(self, path):
        """Set the weights from a file written by ``save`` or ``save_weights``."""
        saving.load_weights(self, path)

    # ------------------------------------------------------------------ views
    def summary(self, print_fn=print, line_length=None):
        """Print layers, output shapes and parameter counts, as Keras does (a graph model adds
        each layer's inbound layers, "Connected to"; a shared layer is counted once)."""
        if not self.built and getattr(self, "input_shape", None) is not None and hasattr(self, "_infer_shapes"):
            self._infer_shapes()
        for line in summary_lines(self, line_length):
            print_fn(line)

    def to_dot(self) -> str:
        """The graph in Graphviz's DOT language: one box per layer (name, class, output shape),
        one edge per call's input (``dot -Tpng`` draws it)."""
        return "\n".join(dot_lines(self))
