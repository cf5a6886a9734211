"""A model's arrays in and out: one array, a list in order or a dict keyed by name per input and
output, checked and (for several) packed into the one table the batch loop reads
(:mod:`.packing`); ``predict``'s table split back into the outputs."""
from __future__ import annotations

from ..nn.layers.symbolic import is_symbolic
from ..training.inputs import check_same_length, prepare_inputs, prepare_targets
from .packing import Packing


class ModelArrays:
    """The array side of :class:`~tensornet.models.Model` (``input_names``, ``output_names``,
    ``heads`` and the shapes come from the model)."""

    @property
    def inputs(self):
        """The model's symbolic input tensors, in order (None for a Sequential model)."""
        topology = getattr(self, "topology", None)
        return None if topology is None else [topology.tensors[slot] for slot in topology.input_slots]

    @property
    def outputs(self):
        """The model's symbolic output tensors, in order (None for a Sequential model)."""
        topology = getattr(self, "topology", None)
        return None if topology is None else [topology.tensors[slot] for slot in topology.output_slots]

    def _arrange(self, data, names, argument, what):
        """``data`` (one array, a list in order, or a dict keyed by name) as a list for ``names``."""
        if isinstance(data, dict):
            missing = [n for n in names if n not in data]
            unknown = [k for k in data if k not in names]
            if missing or unknown:
                raise ValueError(f"{argument} must have one array per model {what} {names}; "
                                 + (f"missing {missing}" if missing else f"unknown {unknown}"))
            return [data[n] for n in names]
        if isinstance(data, (list, tuple)) and len(names) > 1:
            if len(data) != len(names):
                raise ValueError(f"{argument} must be a list of {len(names)} arrays (model {what}s {names}); "
                                 f"got {len(data)}")
            return list(data)
        if len(names) > 1:
            raise ValueError(f"the model has {len(names)} {what}s {names}: pass {argument} as a list or a dict of "
                             f"arrays; got {type(data).__name__}")
        if isinstance(data, (list, tuple)) and len(data) == 1 and hasattr(data[0], "shape"):
            return [data[0]]
        return [data]

    def prepare_x(self, ops, x, argument="x"):
        """``x`` checked (shape, dtype, finite) and, with several inputs, packed into one table."""
        if is_symbolic(x):
            raise TypeError(f"model {self.name!r} was called on symbolic tensors: a model computes on arrays; "
                            "nesting a model inside another graph is not supported (call its layers instead)")
        if self.topology is None:
            return prepare_inputs(ops, x, self.input_shape, self.dtype, argument)
        arrays = self._arrange(x, self.input_names, argument, "input")
        named = len(arrays) > 1
        parts = [prepare_inputs(ops, a, shape, self.dtype, f"{argument}[{name!r}]" if named else argument)
                 for a, shape, name in zip(arrays, self._input_shapes, self.input_names)]
        for part, name in zip(parts[1:], self.input_names[1:]):
            check_same_length(parts[0], part, f"{argument}[{self.input_names[0]!r}]", f"{argument}[{name!r}]")
        return Packing(self._input_shapes).pack(ops, parts, self.dtype)

    def prepare_y(self, ops, y, argument="y"):
        """``y`` checked against each output's loss and, with several outputs, packed."""
        arrays = self._arrange(y, self.output_names, argument, "output")
        named = len(arrays) > 1
        parts = [prepare_targets(ops, a, head.loss, head.shape, self.dtype, f"{argument}[{head.name!r}]" if named
                                 else argument) for a, head in zip(arrays, self.heads)]
        for part, head in zip(parts[1:], self.heads[1:]):
            check_same_length(parts[0], part, f"{argument}[{self.heads[0].name!r}]", f"{argument}[{head.name!r}]")
        return self._target_packing.pack(ops, parts, self.dtype)

    def split_outputs(self, packed):
        """``predict``'s table as the model's outputs: one array (one output not given as a
        dict), a list, or a dict by name (outputs given as a dict)."""
        as_dict = getattr(self, "_structure", ("single", "single"))[1] == "dict"
        if len(self._output_shapes) == 1:
            return {self.output_names[0]: packed} if as_dict else packed
        packing = Packing(self._output_shapes)
        n = packed.shape[0]
        parts = [packed[:, s:s + w].reshape((n,) + shape).copy()
                 for s, w, shape in zip(packing.starts, packing.widths, packing.shapes)]
        return dict(zip(self.output_names, parts)) if as_dict else parts
