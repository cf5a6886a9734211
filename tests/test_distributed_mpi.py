"""Two ranks under ``mpirun -n 2`` (tests/mpi_workers.py) against one process: exact data-parallel
training, the broadcast, the all-reduced History, per-rank dropout, and faults that end the job.

Skipped where mpi4py or ``mpirun`` is missing (``pip install 'tensornet[distributed]'``);
CI installs them and runs these in their own step.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mpi_workers

pytest.importorskip("mpi4py")
MPIRUN = shutil.which("mpirun") or shutil.which("mpirun", path=os.path.dirname(sys.executable))
pytestmark = [pytest.mark.mpi, pytest.mark.skipif(MPIRUN is None, reason="no mpirun on PATH")]
REPO = Path(__file__).resolve().parents[1]


def mpirun(args, timeout=120, ranks=2, backend="numpy", **extra_env):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]),
               OMP_NUM_THREADS="1", TENSORNET_BACKEND=backend, OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1", **extra_env)
    command = [MPIRUN, "-n", str(ranks), "--oversubscribe", sys.executable, *args]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def run_workers(tmp_path, mode, optimizer="sgd", backend="numpy"):
    done, _ = mpirun([str(REPO / "tests" / "mpi_workers.py"), mode, str(tmp_path), optimizer], backend=backend)
    assert done.returncode == 0, done.stdout + done.stderr
    return [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]


def reference(optimizer):
    x, y = mpi_workers.data()
    model = mpi_workers.build(optimizer, seed=10)  # rank 0's weights
    history = model.fit(x, y, batch_size=mpi_workers.BATCH, epochs=mpi_workers.EPOCHS, verbose=0,
                        validation_data=(x[:50], y[:50]))
    return np.concatenate([w.ravel() for w in model.get_weights()]), history.history


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_ranks_train_like_one_process_with_the_global_batch(tmp_path, optimizer):
    ranks = run_workers(tmp_path, "exact", optimizer)
    weights, history = reference(optimizer)
    assert np.array_equal(ranks[0]["weights"], ranks[1]["weights"])  # one model, started from rank 0's
    np.testing.assert_allclose(ranks[0]["weights"], weights, rtol=2e-5, atol=2e-6)
    assert not np.allclose(weights, mpi_workers.build(optimizer, seed=11).get_weights()[0].ravel()[:1])
    for key, values in history.items():
        assert np.array_equal(ranks[0][f"history_{key}"], ranks[1][f"history_{key}"]), key
        np.testing.assert_allclose(ranks[0][f"history_{key}"], values, rtol=1e-5, atol=1e-6)
    assert "one all-reduce of the flat gradient buffer per step over 2 ranks" in str(ranks[0]["path"])
    assert [int(rank["local_rank"]) for rank in ranks] == [0, 1]  # one machine: its GPU 0 and 1


def _two_gpus():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() >= 2
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _two_gpus(), reason="needs CuPy and 2 GPUs")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_gpus_all_reduce_through_nccl_like_one_gpu(tmp_path, optimizer):
    from tensornet.backend import use_backend

    ranks = run_workers(tmp_path, "exact", optimizer, backend="cupy")
    assert "one NCCL all-reduce of the flat gradient buffer per step over 2 GPUs" in str(ranks[0]["path"])
    with use_backend("cupy"):
        weights, history = reference(optimizer)
    assert np.array_equal(ranks[0]["weights"], ranks[1]["weights"])
    np.testing.assert_allclose(ranks[0]["weights"], weights, rtol=2e-5, atol=2e-6)
    for key, values in history.items():
        np.testing.assert_allclose(ranks[0][f"history_{key}"], values, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not _two_gpus(), reason="needs CuPy and 2 GPUs")
def test_two_gpus_synchronize_batch_normalization_through_nccl(tmp_path):
    from tensornet.backend import use_backend

    ranks = run_workers(tmp_path, "syncbn", backend="cupy")
    x, y = mpi_workers.data()
    with use_backend("cupy"):
        model = mpi_workers.build("sgd", seed=10, batchnorm=True, synchronized=True)
        model.fit(x, y, batch_size=mpi_workers.BATCH, epochs=mpi_workers.EPOCHS, verbose=0,
                  validation_data=(x[:50], y[:50]))
    assert np.array_equal(ranks[0]["weights"], ranks[1]["weights"])
    np.testing.assert_allclose(ranks[0]["weights"], np.concatenate([w.ravel() for w in model.get_weights()]),
                               rtol=2e-5, atol=2e-6)


def test_each_rank_trains_its_own_shard(tmp_path):
    ranks = run_workers(tmp_path, "sharded")
    expected = _sharded_reference(mpi_workers.build("sgd", seed=10))
    assert [(int(r["samples"]), int(r["steps"])) for r in ranks] == [(mpi_workers.SAMPLES, 8)] * 2  # the epoch's
    assert np.array_equal(ranks[0]["weights"], ranks[1]["weights"])
    np.testing.assert_allclose(ranks[0]["weights"], expected, rtol=2e-5, atol=2e-6)


def test_buckets_overlapped_with_backward_sum_exactly_as_the_one_call_all_reduce(tmp_path):
    overlap = run_workers(tmp_path, "overlap")
    assert "3 buckets overlapped with backward" in str(overlap[0]["path"])
    x, y = mpi_workers.data()
    model = mpi_workers.build("sgd", seed=10, deep=True)
    model.fit(x, y, batch_size=mpi_workers.BATCH, epochs=mpi_workers.EPOCHS, verbose=0,
              validation_data=(x[:50], y[:50]))
    assert np.array_equal(overlap[0]["weights"], overlap[1]["weights"])
    np.testing.assert_allclose(overlap[0]["weights"], np.concatenate([w.ravel() for w in model.get_weights()]),
                               rtol=2e-5, atol=2e-6)


def test_batch_normalization_trains_on_per_rank_statistics_and_ends_each_epoch_with_rank_0s(tmp_path):
    ranks = run_workers(tmp_path, "batchnorm")
    assert np.array_equal(ranks[0]["moving_mean"], ranks[1]["moving_mean"])
    for key in ("history_val_loss", "history_val_accuracy", "history_loss"):
        assert np.array_equal(ranks[0][key], ranks[1][key]), key
    x, y = mpi_workers.data()  # one process normalises with the statistics of the whole global batch
    model = mpi_workers.build("sgd", seed=10, batchnorm=True)
    model.fit(x, y, batch_size=mpi_workers.BATCH, epochs=mpi_workers.EPOCHS, verbose=0,
              validation_data=(x[:50], y[:50]))
    single = np.concatenate([w.ravel() for w in model.get_weights()])
    assert ranks[0]["weights"].shape == single.shape
    assert not np.allclose(ranks[0]["weights"], single, rtol=1e-4, atol=1e-5)  # per-rank statistics differ


def _sharded_reference(model):
    """One process fit step by step on the rows two ranks take from their uneven shards."""
    x, y = mpi_workers.data()
    parts = [(x[:120], y[:120]), (x[120:], y[120:])]
    for _ in range(mpi_workers.EPOCHS):  # step s: rows [16 s, 16 s + 16) of each part, in rank order
        for step in range(8):
            rows = [(px[16 * step:16 * step + 16], py[16 * step:16 * step + 16]) for px, py in parts]
            xb, yb = np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])
            model.fit(xb, yb, batch_size=len(xb), epochs=1, verbose=0, shuffle=False)
    return np.concatenate([w.ravel() for w in model.get_weights()])


@pytest.mark.parametrize("mode, batch", [("syncbn", mpi_workers.BATCH), ("syncbn_tail", mpi_workers.TAIL_BATCH)])
def test_synchronized_batch_normalization_trains_like_one_process_with_the_global_batch(tmp_path, mode, batch):
    ranks = run_workers(tmp_path, mode)  # last batches of 11 rows (5 and 6 per rank), or of 1 (0 and 1)
    x, y = mpi_workers.data()
    model = mpi_workers.build("sgd", seed=10, batchnorm=True, synchronized=True)
    history = model.fit(x, y, batch_size=batch, epochs=mpi_workers.EPOCHS, verbose=0,
                        validation_data=(x[:50], y[:50])).history
    assert np.array_equal(ranks[0]["weights"], ranks[1]["weights"])
    np.testing.assert_allclose(ranks[0]["weights"], np.concatenate([w.ravel() for w in model.get_weights()]),
                               rtol=2e-5, atol=2e-6)
    state = model.layers[1].get_state_arrays()
    for name in ("moving_mean", "moving_variance"):
        assert np.array_equal(ranks[0][name], ranks[1][name])
        np.testing.assert_allclose(ranks[0][name], state[name], rtol=2e-5, atol=2e-6)
    for key, values in history.items():
        np.testing.assert_allclose(ranks[0][f"history_{key}"], values, rtol=1e-5, atol=1e-6)


def test_synchronized_batch_normalization_with_shards_buckets_and_a_rank_without_rows(tmp_path):
    ranks = run_workers(tmp_path, "syncbn_sharded")  # rank 1's 83 rows run out after 6 of the 8 steps
    assert "buckets overlapped with backward" in str(ranks[0]["path"])
    model = mpi_workers.build("sgd", seed=10, deep=True, batchnorm=True, synchronized=True)
    expected = _sharded_reference(model)
    assert np.array_equal(ranks[0]["weights"], ranks[1]["weights"])
    np.testing.assert_allclose(ranks[0]["weights"], expected, rtol=2e-5, atol=2e-6)
    state = model.layers[1].get_state_arrays()  # the global batch's statistics on every rank
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(ranks[1][name], state[name], rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("mode", ["graph", "graph_overlap"])
def test_a_graph_model_with_shared_layers_trains_like_one_process_with_the_global_batch(tmp_path, mode):
    ranks = run_workers(tmp_path, mode)  # two inputs, a shared Dense and a shared synchronised BN
    assert ("buckets overlapped with backward" in str(ranks[0]["path"])) == (mode == "graph_overlap")
    x, y = mpi_workers.graph_data()
    model = mpi_workers.build_graph(seed=10)
    history = model.fit(x, y, batch_size=mpi_workers.TAIL_BATCH, epochs=mpi_workers.EPOCHS, verbose=0,
                        validation_data=([x[0][:50], x[1][:50]], y[:50])).history
    assert np.array_equal(ranks[0]["weights"], ranks[1]["weights"])
    np.testing.assert_allclose(ranks[0]["weights"], np.concatenate([w.ravel() for w in model.get_weights()]),
                               rtol=2e-5, atol=2e-6)
    state = model.get_layer("norm").get_state_arrays()
    for name in ("moving_mean", "moving_variance"):
        assert np.array_equal(ranks[0][name], ranks[1][name])
        np.testing.assert_allclose(ranks[0][name], state[name], rtol=2e-5, atol=2e-6)
    for key, values in history.items():
        np.testing.assert_allclose(ranks[0][f"history_{key}"], values, rtol=1e-5, atol=1e-6)


def test_dropout_masks_differ_per_rank_and_repeat_from_the_seed(tmp_path):
    first = run_workers(tmp_path, "dropout")
    assert not np.array_equal(first[0]["mask_draw"], first[1]["mask_draw"])
    assert np.array_equal(first[0]["weights"], first[1]["weights"])
    again = run_workers(tmp_path, "dropout")
    for r in range(2):
        assert np.array_equal(first[r]["weights"], again[r]["weights"])


@pytest.mark.parametrize("how", ["raise", "kill", "hang"])
def test_a_failing_rank_ends_the_job_with_an_error_never_a_hang(tmp_path, how):
    done, seconds = mpirun([str(REPO / "tests" / "mpi_workers.py"), how, str(tmp_path)], timeout=90,
                           TENSORNET_DISTRIBUTED_TIMEOUT="5")
    assert done.returncode != 0
    assert seconds < 60
    output = done.stdout + done.stderr
    if how == "raise":
        assert "rank 1 of 2 failed" in output and "a deliberate failure inside fit" in output
    elif how == "kill":
        assert "process rank 1" in output and "signal 9" in output, output  # the launcher names it
    else:  # rank 1 sleeps inside a step: rank 0's next all-reduce waits 5 s, then names it and aborts
        assert "rank 0 of 2 failed" in output and "got no answer within 5 s" in output, output
        assert "rank 1 has stopped or is stuck" in output, output
    assert not (tmp_path / "rank0.npz").exists()


def _killed_then_resumed(tmp_path, kind):
    """The uninterrupted 2-rank run's results, after a 2-rank run killed at step 11 left its checkpoints."""
    full = run_workers(tmp_path, f"ckpt-{kind}-full")
    for rank in range(2):
        (tmp_path / f"rank{rank}.npz").unlink()
    done, _ = mpirun([str(REPO / "tests" / "mpi_workers.py"), f"ckpt-{kind}-kill", str(tmp_path)])
    assert done.returncode != 0, done.stdout + done.stderr
    assert not (tmp_path / "rank0.npz").exists(), "the job ended before the kill: nothing to resume"
    assert (tmp_path / "ck" / "ckpt-0000000009.npz").exists()
    assert not (tmp_path / "ck" / "ckpt-0000000012.npz").exists()
    return full


def test_dropout_under_two_ranks_resumes_bit_exactly_after_a_kill(tmp_path):
    full = _killed_then_resumed(tmp_path, "dropout")
    resumed = run_workers(tmp_path, "ckpt-dropout-resume")
    for rank in range(2):
        assert np.array_equal(resumed[rank]["weights"], full[rank]["weights"]), rank
        for key in ("loss", "accuracy", "val_loss"):
            assert np.array_equal(resumed[rank][f"history_{key}"], full[rank][f"history_{key}"][1:]), key


@pytest.mark.parametrize("order, where", [("shuffled", "mid"), ("ordered", "mid"), ("shuffled", "end")])
def test_uneven_shards_resume_bit_exactly_after_a_kill(tmp_path, order, where):
    from tensornet.checkpoints import CheckpointDirectory

    full = run_workers(tmp_path, f"ckpt-sharded-full-{order}-{where}")
    for rank in range(2):
        (tmp_path / f"rank{rank}.npz").unlink()
    done, _ = mpirun([str(REPO / "tests" / "mpi_workers.py"), f"ckpt-sharded-kill-{order}-{where}", str(tmp_path)])
    assert done.returncode != 0, done.stdout + done.stderr
    assert not (tmp_path / "rank0.npz").exists(), "the job ended before the kill: nothing to resume"
    newest = CheckpointDirectory(tmp_path / "ck").restore()
    assert newest.optimizer.iterations == (10 if where == "mid" else 8)
    assert (newest.resume_point is not None) == (where == "mid")  # inside epoch 2, or at epoch 1's end
    assert [entry["samples"] for entry in newest.shard_states] == [120, 83]
    if order == "shuffled":  # each rank's own generator state, not rank 0's twice
        assert newest.shard_states[0]["generator"] != newest.shard_states[1]["generator"]
    resumed = run_workers(tmp_path, f"ckpt-sharded-resume-{order}-{where}")
    for rank in range(2):
        assert np.array_equal(resumed[rank]["weights"], full[rank]["weights"]), rank
        for key in ("loss", "accuracy"):
            assert np.array_equal(resumed[rank][f"history_{key}"], full[rank][f"history_{key}"][1:]), key
    x, y = mpi_workers.data()  # one process cannot continue two ranks' shards: refused, not inexact
    with pytest.raises(ValueError, match=r"over 2 ranks with shards of \[120, 83\] examples.*in one process"):
        newest.fit(x, y, batch_size=mpi_workers.BATCH, epochs=mpi_workers.EPOCHS, verbose=0,
                   initial_epoch=newest.epochs_completed)


def _resume_here(directory):
    """Continue the newest checkpoint of ``directory`` in this process (a world of one)."""
    from tensornet.checkpoints import CheckpointDirectory

    x, y = mpi_workers.data()
    model = CheckpointDirectory(directory).restore()
    history = model.fit(x, y, batch_size=mpi_workers.BATCH, epochs=mpi_workers.EPOCHS, verbose=0,
                        validation_data=(x[:50], y[:50]), initial_epoch=model.epochs_completed)
    return np.concatenate([w.ravel() for w in model.get_weights()]), history.history


def test_a_two_rank_checkpoint_resumes_in_one_process_with_the_same_global_batch(tmp_path):
    full = _killed_then_resumed(tmp_path, "plain")
    weights, history = _resume_here(tmp_path / "ck")  # the same global batch of 32, split in none
    np.testing.assert_allclose(weights, full[0]["weights"], rtol=2e-5, atol=2e-6)  # up to summation order
    for key in ("loss", "accuracy", "val_loss"):
        np.testing.assert_allclose(history[key], full[0][f"history_{key}"][1:], rtol=1e-5, atol=1e-6)


def test_a_one_process_checkpoint_resumes_under_two_ranks_with_the_same_global_batch(tmp_path):
    from tensornet.callbacks import Callback, Checkpoints

    class StopAt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == 11:
                raise KeyboardInterrupt  # the process ends here: its newest checkpoint is step 9's

    x, y = mpi_workers.data()
    model = mpi_workers.build("sgd", seed=10)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=mpi_workers.BATCH, epochs=mpi_workers.EPOCHS, verbose=0,
                  validation_data=(x[:50], y[:50]), callbacks=[Checkpoints(tmp_path / "ck", every_steps=3), StopAt()])
    ranks = run_workers(tmp_path, "ckpt-plain-resume")
    single = mpi_workers.build("sgd", seed=10)
    single.fit(x, y, batch_size=mpi_workers.BATCH, epochs=mpi_workers.EPOCHS, verbose=0)
    expected = np.concatenate([w.ravel() for w in single.get_weights()])
    assert np.array_equal(ranks[0]["weights"], ranks[1]["weights"])
    np.testing.assert_allclose(ranks[0]["weights"], expected, rtol=2e-5, atol=2e-6)


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step_with_one_checkpoint(tmp_path):
    from tensornet.checkpoints import load_checkpoint

    ranks = run_workers(tmp_path, "interrupt")  # SIGINT reaches rank 1 only, at its step 11
    assert [int(r["step"]) for r in ranks] == [11, 11] and [int(r["batch"]) for r in ranks] == [3, 3]
    assert [int(r["written"]) for r in ranks] == [1, 0]  # rank 0 writes, rank 1 does not
    assert np.array_equal(ranks[0]["weights"], ranks[1]["weights"])
    model = load_checkpoint(tmp_path / "ck" / "ckpt-0000000011.npz")
    assert model.resume_point.epoch == 1 and model.resume_point.batch == 4
    assert model.resume_point.totals["samples"] == 4 * mpi_workers.BATCH  # both ranks' examples of the epoch


def _rank_pid(marker, rank):
    """The pid of the rank-``rank`` process whose command line holds ``marker`` (from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in cmdline and "--distributed" in cmdline and f"OMPI_COMM_WORLD_RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def test_a_checkpoint_written_by_two_ranks_resumes_bit_exactly_after_one_rank_is_killed(tmp_path):
    from helpers import write_tiny_dataset
    from kill_resume import KillReport, _compare

    data = write_tiny_dataset(tmp_path / "data", n_train=2400, n_test=60)
    train = ["-m", "tensornet", "train", "--distributed", "--data", str(data), "--epochs", "4", "--hidden", "256",
             "--batch-size", "64", "--verbose", "0", "--lr", "0.05", "--validation-split", "0.1"]
    done, _ = mpirun([*train, "--save", str(tmp_path / "reference.npz")])
    assert done.returncode == 0, done.stderr
    checkpoints = tmp_path / "ck"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", TENSORNET_BACKEND="numpy",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    job = subprocess.Popen([MPIRUN, "-n", "2", "--oversubscribe", sys.executable, *train, "--checkpoint-dir",
                            str(checkpoints), "--checkpoint-every-steps", "3", "--save", str(tmp_path / "final.npz")],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(checkpoints.glob("ckpt-*.npz"))) < 3:  # a few steps in
        time.sleep(0.005)
    pid = _rank_pid(str(checkpoints), 1)
    assert pid is not None, "rank 1 was not found"
    os.kill(pid, 9)
    output, _ = job.communicate(timeout=60)
    assert job.returncode != 0, output
    assert not (tmp_path / "final.npz").exists(), "the job ended before the kill: nothing to resume"
    done, _ = mpirun([*train, "--resume", str(checkpoints), "--save", str(tmp_path / "final.npz")])
    assert done.returncode == 0, done.stderr
    assert "after batch" in done.stdout, done.stdout  # the checkpoint was taken inside an epoch
    report = KillReport()
    _compare(tmp_path / "reference.npz", tmp_path / "final.npz", report)
    assert report.identical, report.differences
