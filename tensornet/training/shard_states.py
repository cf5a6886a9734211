"""Exact resume of data-parallel ``fit(..., data_sharded=True)``: each rank's own resume state.

With sharded data every rank trains on its own examples, so where an epoch stands differs per
rank: rank r has its own example count n_r, its own epoch order (a permutation of its n_r rows,
drawn from its generator) and therefore its own generator state after the draw. A checkpoint of
such a run holds, besides rank 0's model, one entry per rank ``{"samples": n_r, "generator":
state, "order": permutation or None}``, gathered to rank 0 when the checkpoint is taken (every
rank takes part; only rank 0 writes the file). On resume rank 0's entries are broadcast and
rank r continues from entry r: its generator state (so the next epoch's order is the one the
uninterrupted run drew) and, inside an epoch, its own order and example count. The
continuation is then bit for bit the uninterrupted run's.

The entries bind the checkpoint to its world: the same number of ranks, each passing as many
examples as it did. Any other world (another K, one process, or a fit without
``data_sharded=True``) would draw other orders from other generators, so it is refused with an
error naming both worlds.
"""
from __future__ import annotations

import dataclasses

import numpy

from ..distributed.collectives import allgather_int, allgather_objects, broadcast_object


def gather(trainer, inside_epoch):
    """Every rank's ``{"samples", "generator", "order"}`` as a list by rank (a collective made on
    every rank of a sharded fit when a checkpoint is taken; None outside one)."""
    parallel = trainer.parallel
    if parallel is None or not parallel.data_sharded:
        return None
    model, world = trainer.model, parallel.world
    order = None
    if inside_epoch:
        point = trainer.position if trainer.position is not None else trainer._starting_point
        if point is not None and point.order is not None:
            order = numpy.asarray(model.ops.to_numpy(point.order), dtype=numpy.int64)
    own = {"samples": int(parallel.rows[world.rank]), "generator": model.rng.bit_generator.state, "order": order}
    return allgather_objects(world, own, "the gather of each rank's resume state for a checkpoint")


def take_own(model, world, data_sharded, rows):
    """This rank's entry of the checkpoint ``model`` was restored from (None when it holds none),
    rank 0's entries scattered to every rank; ``model.resume_point`` then describes this rank's
    position. Raises ValueError (on every rank alike) when this fit's world differs from the one
    that wrote the entries."""
    parallel = world is not None and world.size > 1
    shards = getattr(model, "shard_states", None)
    if parallel and data_sharded:
        shards = broadcast_object(world, shards, what="the scatter of each rank's resume state")
    if shards is None:
        return None
    written = [entry["samples"] for entry in shards]
    if not (parallel and data_sharded):
        raise ValueError(f"the checkpoint was written by fit(..., data_sharded=True) over {len(shards)} ranks with "
                         f"shards of {written} examples; this fit runs "
                         f"{'without data_sharded=True' if parallel else 'in one process'}. Sharded training "
                         f"resumes exactly only under {len(shards)} ranks, each passing its own shard again (or set "
                         "model.shard_states = None to train on from rank 0's state, inexactly).")
    here = allgather_int(world, rows, "the check of each rank's shard against the checkpoint")
    if here != written:
        raise ValueError(f"the checkpoint was written by fit(..., data_sharded=True) over {len(shards)} ranks with "
                         f"shards of {written} examples; this fit runs over {world.size} ranks with shards of "
                         f"{here}. The shards differ, so the epoch orders and positions would too: resume under "
                         f"{len(shards)} ranks, each passing the shard it trained on.")
    own = shards[world.rank]
    if model.resume_point is not None:
        model.resume_point = dataclasses.replace(model.resume_point, samples=own["samples"], order=own["order"])
    model.shard_states = None
    return own


def write(header, arrays, shards):
    """Put ``shards`` (from :func:`gather`) into a checkpoint's header and arrays."""
    header["shards"] = [{"samples": int(entry["samples"]), "generator": entry["generator"],
                         "shuffled": entry["order"] is not None} for entry in shards]
    for rank, entry in enumerate(shards):
        if entry["order"] is not None:
            arrays[f"shards/{rank}/order"] = numpy.asarray(entry["order"], dtype=numpy.int64)


def read(header, arrays, path):
    """The per-rank entries a checkpoint holds (None when it holds none), each field checked."""
    entries = header.get("shards")
    if entries is None:
        return None

    def fail(problem):
        raise ValueError(f"{path!r}: malformed per-rank resume state in the checkpoint: {problem}")

    if not isinstance(entries, list) or len(entries) < 2:
        fail(f"expected a list of at least 2 entries, one per rank; got {entries!r}")
    shards = []
    for rank, entry in enumerate(entries):
        if not isinstance(entry, dict):
            fail(f"rank {rank}'s entry is {entry!r}, not a dict")
        samples, generator, shuffled = entry.get("samples"), entry.get("generator"), entry.get("shuffled")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            fail(f"rank {rank}'s example count is {samples!r}")
        if not isinstance(generator, dict) or "bit_generator" not in generator:
            fail(f"rank {rank}'s generator state is {generator!r}")
        if not isinstance(shuffled, bool):
            fail(f"rank {rank}'s shuffled flag is {shuffled!r}")
        order = arrays.get(f"shards/{rank}/order") if shuffled else None
        if shuffled and (order is None or order.shape != (samples,) or order.dtype.kind not in "iu"
                         or not numpy.array_equal(numpy.sort(order), numpy.arange(samples))):
            fail(f"rank {rank}'s epoch order is missing or not a permutation of its {samples} examples")
        shards.append({"samples": samples, "generator": generator, "order": order})
    return shards
