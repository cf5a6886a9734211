"""Each rank's resume state in a data-sharded checkpoint (tensornet.training.shard_states):
written and read back, malformed entries refused, and a world that differs refused. The 2-rank
kill-and-resume runs are in tests/test_distributed_mpi.py."""
from __future__ import annotations

import numpy as np
import pytest

from tensornet.distributed import collectives
from tensornet.distributed.world import World
from tensornet.training import shard_states


def _entries():
    rng = np.random.default_rng(3)
    first, second = np.random.default_rng(1), np.random.default_rng(2)
    return [{"samples": 7, "generator": first.bit_generator.state, "order": rng.permutation(7)},
            {"samples": 5, "generator": second.bit_generator.state, "order": rng.permutation(5)}]


def test_entries_written_into_a_checkpoint_read_back_equal():
    header, arrays = {}, {}
    shard_states.write(header, arrays, _entries())
    read = shard_states.read(header, arrays, "ck.npz")
    for got, want in zip(read, _entries()):
        assert got["samples"] == want["samples"] and got["generator"] == want["generator"]
        assert np.array_equal(got["order"], want["order"])
    assert shard_states.read({}, {}, "ck.npz") is None  # a checkpoint of a fit without shards


@pytest.mark.parametrize("damage, message", [
    (lambda h, a: h["shards"][1].update(samples=-1), "rank 1's example count is -1"),
    (lambda h, a: h["shards"][0].update(generator=None), "rank 0's generator state"),
    (lambda h, a: a.update({"shards/1/order": np.array([0, 1, 1, 3, 4])}), "not a permutation of its 5"),
    (lambda h, a: h.update(shards=h["shards"][:1]), "at least 2 entries"),
])
def test_a_malformed_entry_is_refused_naming_the_rank(damage, message):
    header, arrays = {}, {}
    shard_states.write(header, arrays, _entries())
    damage(header, arrays)
    with pytest.raises(ValueError, match="malformed per-rank resume state") as error:
        shard_states.read(header, arrays, "ck.npz")
    assert message in str(error.value)


def test_a_sharded_checkpoint_is_refused_by_one_process():
    class Restored:
        shard_states, resume_point = _entries(), None

    with pytest.raises(ValueError, match=r"over 2 ranks with shards of \[7, 5\] examples; this fit runs in one"):
        shard_states.take_own(Restored(), None, True, 7)
    plain = Restored()
    plain.shard_states = None
    assert shard_states.take_own(plain, None, False, 7) is None


def test_allgather_objects_on_a_world_of_one_is_the_value_in_a_list():
    world = World()
    assert collectives.allgather_objects(world, {"k": [1, 2]}) == [{"k": [1, 2]}]


class _TwoRanks:
    """Rank 1 of a world of 2 whose collectives the tests answer (what MPI would return)."""
    size, rank = 2, 1


@pytest.fixture
def answered(monkeypatch):
    def answer(counts):
        monkeypatch.setattr(shard_states, "broadcast_object", lambda world, value, what: value)
        monkeypatch.setattr(shard_states, "allgather_int", lambda world, value, what: counts)
    return answer


def test_rank_r_continues_from_its_own_entry(answered):
    from tensornet.training.checkpoints import ResumePoint

    class Restored:
        shard_states = _entries()
        resume_point = ResumePoint(epoch=1, batch=2, samples=7, batch_size=4, order=_entries()[0]["order"],
                                   totals={"loss": 0.0, "metrics": [], "samples": 0})

    answered([7, 5])
    model = Restored()
    own = shard_states.take_own(model, _TwoRanks(), True, 5)
    assert own["generator"] == _entries()[1]["generator"] and model.shard_states is None
    assert model.resume_point.samples == 5 and np.array_equal(model.resume_point.order, _entries()[1]["order"])


@pytest.mark.parametrize("counts, sharded, message", [
    ([7, 6], True, r"over 2 ranks with shards of \[7, 6\]\. The shards differ"),
    ([7, 5], False, "this fit runs without data_sharded=True"),
])
def test_a_sharded_checkpoint_is_refused_by_another_world(answered, counts, sharded, message):
    class Restored:
        shard_states, resume_point = _entries(), None

    answered(counts)
    with pytest.raises(ValueError, match=message):
        shard_states.take_own(Restored(), _TwoRanks(), sharded, counts[1])
    assert Restored.shard_states is not None  # kept, so a corrected call can still resume
