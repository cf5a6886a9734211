"""What each rank runs in the 2-rank tests (tests/test_distributed_mpi.py starts it under
``mpirun -n 2``): ``python tests/mpi_workers.py MODE OUTDIR [OPTIMIZER]``.

``build`` and ``data`` are shared with the single-process reference the tests compute, so the
two differ only in the world they train in. Each rank writes ``OUTDIR/rank<r>.npz``.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

import tensornet.distributed as dist
from tensornet.callbacks import Callback
from tensornet.layers import BatchNormalization, Dense, Dropout
from tensornet.models import Sequential
from tensornet.optimizers import SGD, Adam

SAMPLES, BATCH, EPOCHS = 203, 32, 3  # the last batch holds 11 examples: 5 and 6 per rank
TAIL_BATCH = 101  # batches of 101, 101 and 1: in the last, rank 0 has no example


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((SAMPLES, 12)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, SAMPLES)]
    return x, y


def build(optimizer, seed, dropout=False, deep=False, batchnorm=False, synchronized=False):
    layers = [Dense(16, activation="tanh", input_shape=(12,))]
    if batchnorm:
        layers.append(BatchNormalization(momentum=0.9, synchronized=synchronized))
    if deep:
        layers += [Dense(16, activation="relu"), Dense(16, activation="tanh")]
    if deep and batchnorm:
        layers.append(BatchNormalization(momentum=0.8, synchronized=synchronized))
    if dropout:
        layers.append(Dropout(0.3))
    layers.append(Dense(3, activation="softmax"))
    model = Sequential(layers, seed=seed)
    rule = SGD(0.1, momentum=0.9, nesterov=True) if optimizer == "sgd" else Adam(0.01)
    model.compile(loss="categorical_crossentropy", optimizer=rule, metrics=["accuracy"])
    return model


def graph_data(seed=0):
    """Two inputs for :func:`build_graph`: ``data``'s 12 columns and 5 more."""
    x, y = data(seed)
    extra = np.random.default_rng(seed + 1).standard_normal((SAMPLES, 5)).astype("float32")
    return [x, extra], y


def build_graph(seed):
    """A graph model: two inputs, a Dense layer and a synchronised BatchNormalization each
    shared by both branches, the branches added."""
    from tensornet.layers import Add, Input
    from tensornet.models import Model

    a, b = Input(shape=(12,), name="a"), Input(shape=(5,), name="b")
    shared = Dense(8, activation="tanh", name="shared")
    norm = BatchNormalization(momentum=0.9, synchronized=True, name="norm")
    left = norm(shared(a))
    right = norm(shared(Dense(12, activation="relu", name="project")(b)))
    out = Dense(3, activation="softmax", name="head")(Add(name="sum")([left, right]))
    model = Model(inputs=[a, b], outputs=out, seed=seed)
    model.compile(loss="categorical_crossentropy", optimizer=SGD(0.1, momentum=0.9, nesterov=True),
                  metrics=["accuracy"])
    return model


class FailAt(Callback):
    """On rank ``rank``, at batch ``batch`` of epoch 2: raise, SIGKILL the process, or hang (sleep)."""

    def __init__(self, rank, how):
        super().__init__()
        self.rank, self.how, self.epoch = rank, how, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if dist.current_world().rank == self.rank and self.epoch == 1 and batch == 3:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "interrupt":
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C reaching this rank only
                return
            if self.how == "hang":
                time.sleep(3600)  # stuck in compute: the other rank's next all-reduce times out
            raise ValueError("a deliberate failure inside fit")


def checkpointed(kind, phase, out, world):
    """``ckpt-<dropout|plain>-<full|kill|resume>``: fit with a checkpoint every 3 steps in
    ``OUT/ck`` (``OUT/ck_full`` for the uninterrupted run); ``kill`` SIGKILLs rank 1 at step 11
    (after the step-9 checkpoint, inside epoch 2); ``resume`` continues from ``OUT/ck``'s newest."""
    from tensornet.callbacks import Checkpoints
    from tensornet.checkpoints import CheckpointDirectory

    x, y = data()
    directory = out / ("ck_full" if phase == "full" else "ck")
    if phase == "resume":
        model = CheckpointDirectory(directory).restore()
    else:
        model = build("sgd", seed=10 + world.rank, dropout=kind == "dropout")
    callbacks = [Checkpoints(directory, every_steps=3)] + ([FailAt(1, "kill")] if phase == "kill" else [])
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=callbacks,
                        validation_data=(x[:50], y[:50]), initial_epoch=model.epochs_completed)
    return model, history


def sharded_checkpointed(phase, order, where, out, world):
    """``ckpt-sharded-<full|kill|resume>-<shuffled|ordered>-<mid|end>``: fit on uneven shards
    (120 and 83 rows: 8 steps an epoch, rank 1's rows used up after 6) with checkpoints every 5
    steps (``mid``: the newest before the kill is step 10's, inside epoch 2) or at every epoch's
    end (``end``: the newest is epoch 1's); ``kill`` SIGKILLs rank 1 at step 12."""
    from tensornet.callbacks import Checkpoints
    from tensornet.checkpoints import CheckpointDirectory

    x, y = data()
    start, stop = (0, 120) if world.rank == 0 else (120, SAMPLES)
    directory = out / ("ck_full" if phase == "full" else "ck")
    if phase == "resume":
        model = CheckpointDirectory(directory).restore()
    else:
        model = build("sgd", seed=10 + world.rank)
    every = {"every_steps": 5, "every_epochs": None} if where == "mid" else {"every_epochs": 1}
    callbacks = [Checkpoints(directory, **every)] + ([FailAt(1, "kill")] if phase == "kill" else [])
    history = model.fit(x[start:stop], y[start:stop], batch_size=BATCH, epochs=EPOCHS, verbose=0,
                        callbacks=callbacks, shuffle=order == "shuffled", data_sharded=True,
                        initial_epoch=model.epochs_completed)
    return model, history


def interrupted(out, world):
    """SIGINT on rank 1 alone inside epoch 2, with a checkpoint callback taking interrupts: every
    rank must stop after the same step, and rank 0 write the checkpoint."""
    from tensornet.callbacks import Checkpoints
    from tensornet.errors import TrainingInterrupted

    x, y = data()
    model = build("sgd", seed=10 + world.rank)
    try:
        model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0,
                  callbacks=[Checkpoints(out / "ck", every_steps=100), FailAt(1, "interrupt")])
    except TrainingInterrupted as stop:
        np.savez(out / f"rank{world.rank}.npz", step=stop.step, epoch=stop.epoch, batch=stop.batch,
                 written=len(stop.checkpoints), weights=np.concatenate([w.ravel() for w in model.get_weights()]))


def main(mode, out, optimizer="sgd"):
    if mode == "interrupt":
        interrupted(Path(out), dist.init())
        return
    if mode.startswith("ckpt-"):
        world = dist.init()
        kind, *rest = mode.split("-")[1:]
        if kind == "sharded":
            model, history = sharded_checkpointed(*rest, Path(out), world)
        else:
            model, history = checkpointed(kind, *rest, Path(out), world)
        weights = np.concatenate([w.ravel() for w in model.get_weights()])
        np.savez(Path(out) / f"rank{world.rank}.npz", weights=weights, size=world.size,
                 **{f"history_{k}": np.array(v) for k, v in history.history.items()})
        return
    if mode in ("graph", "graph_overlap"):  # batches of 101, 101 and 1: rank 0 has no example in the last
        world = dist.init(bucket_bytes=256 if mode == "graph_overlap" else None)
        x, y = graph_data()
        model = build_graph(seed=10 + world.rank)
        history = model.fit(x, y, batch_size=TAIL_BATCH, epochs=EPOCHS, verbose=0,
                            validation_data=([x[0][:50], x[1][:50]], y[:50]))
        np.savez(Path(out) / f"rank{world.rank}.npz", weights=np.concatenate([w.ravel() for w in model.get_weights()]),
                 **model.get_layer("norm").get_state_arrays(), path=model.step_path,
                 **{f"history_{k}": np.array(v) for k, v in history.history.items()})
        return
    overlap = mode in ("overlap", "syncbn_sharded")
    world = dist.init(bucket_bytes=256 if overlap else None)  # 3 buckets: the last two layers, then one each
    out = Path(out)
    x, y = data()
    model = build(optimizer, seed=10 + world.rank, dropout=mode == "dropout", deep=overlap,
                  batchnorm=mode.startswith(("batchnorm", "syncbn")),
                  synchronized=mode.startswith("syncbn"))  # different weights per rank
    callbacks = [FailAt(1, mode)] if mode in ("raise", "kill", "hang") else []
    if mode in ("sharded", "syncbn_sharded"):
        start, stop = (0, 120) if world.rank == 0 else (120, SAMPLES)  # uneven parts
        params = Callback()  # keeps the params fit gives callbacks (and the progress output)
        history = model.fit(x[start:stop], y[start:stop], batch_size=BATCH, epochs=EPOCHS, verbose=0,
                            shuffle=False, data_sharded=True, callbacks=[params])
    else:
        batch = TAIL_BATCH if mode == "syncbn_tail" else BATCH
        history = model.fit(x, y, batch_size=batch, epochs=EPOCHS, verbose=0, callbacks=callbacks,
                            validation_data=(x[:50], y[:50]))
    weights = np.concatenate([w.ravel() for w in model.get_weights()])
    extra = {}
    if mode in ("sharded", "syncbn_sharded"):
        extra["samples"], extra["steps"] = params.params["samples"], params.params["steps"]
    if mode == "dropout":
        extra["mask_draw"] = model.layers[1].rng.random(8)
    if mode.startswith(("batchnorm", "syncbn")):
        extra["moving_mean"] = model.layers[1].get_state_arrays()["moving_mean"]
        extra["moving_variance"] = model.layers[1].get_state_arrays()["moving_variance"]
    np.savez(out / f"rank{world.rank}.npz", weights=weights, size=world.size, local_rank=world.local_rank,
             path=model.step_path,
             **{f"history_{k}": np.array(v) for k, v in history.history.items()}, **extra)


if __name__ == "__main__":
    main(*sys.argv[1:])
