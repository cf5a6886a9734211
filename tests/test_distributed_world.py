"""tensornet.distributed without a launcher: a world of size 1, no MPI imported, plain fit; the
warning when a launcher started several processes but init() was not called."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tensornet.distributed import faults, world as world_module
from tensornet.training.data_parallel import share

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def run_python(code, **env):
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "PMIX_"))}
    full.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)


def test_init_without_a_launcher_is_a_world_of_one_and_imports_no_mpi():
    done = run_python("import sys, tensornet.distributed as d; w = d.init(); "
                      "print(w.rank, w.size, w.local_rank, w.is_root, 'mpi4py' in sys.modules, d.init() is w)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1", "0", "True", "False", "True"]


def test_import_tensornet_never_imports_mpi4py():
    done = run_python("import sys, tensornet; tensornet.Sequential; print('mpi4py' in sys.modules)")
    assert done.stdout.strip() == "False", done.stderr


def test_fit_under_a_launcher_without_init_warns_that_each_rank_trains_alone():
    code = ("import warnings, numpy as np; from tensornet.models import Sequential; from tensornet.layers import Dense\n"
            "m = Sequential([Dense(2, input_shape=(3,))]); m.compile(loss='mse', optimizer='sgd')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always'); m.fit(np.ones((4, 3), 'float32'), np.ones((4, 2), 'float32'), verbose=0)\n"
            "print([str(x.message) for x in w])")
    done = run_python(code, OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0")
    assert done.returncode == 0, done.stderr
    assert "init() was not called: each rank trains alone" in done.stdout


@pytest.mark.parametrize("rows, size", [(32, 2), (11, 2), (7, 3), (1, 2), (0, 4)])
def test_shares_split_a_batch_into_contiguous_parts_differing_by_at_most_one(rows, size):
    parts = [share(rows, rank, size) for rank in range(size)]
    assert parts[0][0] == 0 and parts[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    lengths = [stop - start for start, stop in parts]
    assert max(lengths) - min(lengths) <= 1


def test_the_timeout_comes_from_the_environment_and_bad_values_are_named(monkeypatch):
    monkeypatch.setenv("TENSORNET_DISTRIBUTED_TIMEOUT", "2.5")
    assert faults.timeout_seconds() == 2.5
    monkeypatch.setenv("TENSORNET_DISTRIBUTED_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="TENSORNET_DISTRIBUTED_TIMEOUT must be a number"):
        faults.timeout_seconds()


def test_a_request_that_never_completes_raises_naming_the_rank_after_the_timeout():
    class Pending:
        def Test(self):
            return False

    world = world_module.World(rank=1, size=2, timeout=0.05)
    with pytest.raises(faults.DistributedError, match=r"rank 1 of 2: the gradient all-reduce got no answer .* 0.05 s"
                                                      r".*: rank 0 has stopped or is stuck"):
        faults.wait(Pending(), world, "the gradient all-reduce")
    world = world_module.World(rank=2, size=4, timeout=0.01)
    with pytest.raises(faults.DistributedError, match="one of ranks 0, 1, 3 has stopped"):
        faults.wait(Pending(), world, "the gradient all-reduce")


def test_collectives_on_a_world_of_one_are_identities():
    from tensornet.distributed import collectives

    world = world_module.World()
    a = np.arange(5, dtype=np.float32)
    assert collectives.allreduce_sum_(world, a) is a and np.array_equal(a, np.arange(5))
    assert collectives.broadcast_object(world, {"k": 1}) == {"k": 1}
    assert collectives.allreduce_floats(world, [1, 2.5]) == [1.0, 2.5]
    assert collectives.allgather_int(world, 7) == [7]


@pytest.mark.parametrize("bucket_bytes, expected", [(1, 3), (800, 2), (10 ** 9, 1)])
def test_gradient_buckets_tile_the_flat_buffer_last_layer_first(bucket_bytes, expected):
    from tensornet.layers import Activation, Dense
    from tensornet.models import Sequential
    from tensornet.training.gradient_buckets import GradientBuckets

    model = Sequential([Dense(20, input_shape=(7,)), Activation("relu"), Dense(9), Dense(3)], seed=0)
    model.compile(loss="mse", optimizer="sgd")
    model.build((7,))
    buckets = GradientBuckets(world_module.World(), model, bucket_bytes).buckets
    assert len(buckets) == expected
    _, grads = model.store.flat()
    assert buckets[0][2] == grads.shape[0] and buckets[-1][1] == 0
    assert all(a[1] == b[2] for a, b in zip(buckets, buckets[1:]))  # contiguous, from the end down
    dense = [layer for layer in model.layers if layer.weights]
    firsts = [first for first, _, _ in buckets]
    assert firsts == sorted(firsts, key=lambda layer: -dense.index(layer))


def test_init_rejects_a_bad_bucket_size():
    from tensornet.distributed import init

    with pytest.raises(ValueError, match="bucket_bytes must be a positive int"):
        init(bucket_bytes=0)


def test_the_local_rank_comes_from_the_launchers_environment(monkeypatch):
    for _, _, local in world_module._LAUNCHERS:
        monkeypatch.delenv(local, raising=False)
    assert world_module.local_rank_from_launcher() is None  # init() then asks MPI
    monkeypatch.setenv("MPI_LOCALRANKID", "garbled")
    assert world_module.local_rank_from_launcher() is None
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3")
    assert world_module.local_rank_from_launcher() == 3
