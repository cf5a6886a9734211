"""``tensornet train``: load the data set, build (or resume) the network, fit it, evaluate it on
the test set and print ``test loss: ... - test accuracy: ...``."""
from __future__ import annotations

import os
import time

from .outputs import write_outputs


def progress_level(verbose: str) -> int:
    """fit's ``verbose`` for ``--verbose``: ``auto`` is Keras' default, 1 (a progress bar per epoch
    on a terminal, one line per epoch when stdout is a log or a pipe)."""
    return 1 if verbose == "auto" else int(verbose)


def load(dataset, path):
    """(x_train, y_train), (x_test, y_test) of ``dataset`` as uint8 pixels and integer labels."""
    from ..datasets import fashion_mnist, mnist

    module = fashion_mnist if dataset == "fashion_mnist" else mnist
    return module.load_data(path)


def build_model(args, input_shape, examples):
    """The network ``--model`` names, compiled with SGD on the ``--schedule``: ``mlp``, Dense layers
    of the ``--hidden`` sizes; ``cnn``, :func:`tensornet.models.presets.fashion_cnn` on (h, w, 1) images."""
    from ..models import Sequential
    from ..nn.layers import Dense, Flatten
    from ..optim.optimizers import SGD

    if args.model == "cnn":
        from ..models.presets import fashion_cnn

        model = fashion_cnn(input_shape=image_shape(input_shape), dtype=args.dtype, seed=args.seed)
    else:
        model = Sequential(dtype=args.dtype, seed=args.seed)
        model.add(Flatten(input_shape=input_shape))
        for units in args.hidden:
            model.add(Dense(units, activation=args.activation))
        model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"],
                  optimizer=SGD(learning_rate=learning_rate(args, examples), momentum=args.momentum,
                                nesterov=args.nesterov, weight_decay=args.weight_decay))
    return model


def image_shape(shape):
    """(h, w, 1) for grey images of ``shape`` (h, w): the channels-last layout Conv2D takes."""
    return tuple(shape) + (1,) if len(shape) == 2 else tuple(shape)


def model_input_shape(model):
    """The per-example input shape the model's first layer was built for (() when unknown)."""
    return tuple(getattr(model.layers[0], "input_shape", None) or ()) if model.layers else ()


def train(args) -> float:
    """Run the train command for the parsed ``args``; returns the test accuracy."""
    from ..backend import get_backend, use_backend
    from ..utils import to_categorical

    if args.deterministic:
        from ..backend import set_deterministic

        set_deterministic(True)
    verbose = progress_level(args.verbose)
    backend = get_backend(args.backend)
    schedule = "cosine" if args.schedule == "cosine" else f"inverse_time decay={args.decay}"
    network = "model cnn" if args.model == "cnn" else f"hidden {args.hidden}"
    print(f"tensornet: backend {backend.name}, dataset {args.dataset}, {network}, "
          f"SGD(lr={args.lr} {schedule}, momentum={args.momentum}, nesterov={args.nesterov}), "
          f"batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}", flush=True)
    started = time.perf_counter()
    directory = checkpoint_dir(args)
    with use_backend(backend):
        # The saved run, or the check that no other run's checkpoints are in the way, comes before
        # the data: a bad --resume file or --checkpoint-dir stops the command without loading it.
        model = resume(args.resume) if args.resume else None
        if model is None:
            refuse_to_overwrite_run(directory)
        (x_train, y_train), (x_test, y_test) = load(args.dataset, args.data)
        x_train = x_train.astype(args.dtype) / 255.0
        x_test = x_test.astype(args.dtype) / 255.0
        y_train, y_test = to_categorical(y_train, 10, args.dtype), to_categorical(y_test, 10, args.dtype)
        # Image models take (n, h, w, 1); a resumed run's model decides, not --model.
        if (len(model_input_shape(model)) == 3) if model is not None else args.model == "cnn":
            x_train, x_test = (x.reshape((len(x),) + image_shape(x.shape[1:])) for x in (x_train, x_test))
        if model is not None:
            warn_if_schedule_ends(model.optimizer.schedule, args, len(x_train))
        else:
            model = build_model(args, x_train.shape[1:], len(x_train))
        if verbose:
            model.summary()
        save_path = args.save or (args.resume if args.resume and not os.path.isdir(args.resume) else None)
        callbacks = []
        if save_path:
            from ..training.callbacks import ModelCheckpoint

            callbacks.append(ModelCheckpoint(save_path))
        if directory:
            from ..training.callbacks import Checkpoints

            callbacks.append(Checkpoints(directory, every_epochs=args.checkpoint_every_epochs or 1,
                                         every_steps=args.checkpoint_every_steps, keep=args.keep_checkpoints or 3))
        model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=verbose,
                  validation_split=args.validation_split, callbacks=callbacks,
                  initial_epoch=min(model.epochs_completed, args.epochs))
        if verbose:
            print(f"training step: {model.step_path}", flush=True)
        loss, accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
        write_outputs(model, save_path, args)
    elapsed = time.perf_counter() - started
    print(f"test loss: {loss:.4f} - test accuracy: {accuracy:.4f} ({accuracy * 100:.2f}%) - "
          f"wall time {elapsed:.1f}s", flush=True)
    return accuracy


def checkpoint_dir(args):
    """The run's checkpoint directory: --checkpoint-dir, or the directory --resume names."""
    if getattr(args, "checkpoint_dir", None):
        return args.checkpoint_dir
    path = getattr(args, "resume", None)
    return path if path and os.path.isdir(path) else None


def resume(path):
    """The model saved at ``path``: a model file, or the newest complete checkpoint in a
    checkpoint directory."""
    if os.path.isdir(path):
        from ..models import CheckpointDirectory, load_checkpoint

        source = CheckpointDirectory(path).newest()
        if source is None:
            raise FileNotFoundError(f"--resume {path}: the directory holds no complete checkpoint")
        model = load_checkpoint(source)
    else:
        from ..models import load_model

        model, source = load_model(path), path
    point = model.resume_point
    where = (f"in epoch {point.epoch + 1} after batch {point.batch}" if point is not None
             else f"after epoch {model.epochs_completed}")
    print(f"tensornet: resuming {source} {where} (optimizer step {model.optimizer.iterations})", flush=True)
    return model


def refuse_to_overwrite_run(directory):
    """A fresh run must not mix its checkpoints with another run's."""
    if directory and os.path.isdir(directory):
        from ..models import CheckpointDirectory

        newest = CheckpointDirectory(directory).newest(verify=False)
        if newest is not None:
            raise ValueError(f"--checkpoint-dir {directory} already holds checkpoints of a run (newest: {newest}); "
                             f"continue it with --resume {directory}, or choose another directory")


def learning_rate(args, examples):
    """The schedule --schedule names: cosine decay to 0 over the run's steps, or inverse time."""
    from ..optim.schedules import CosineDecay, InverseTimeDecay

    if args.schedule == "inverse_time":
        return InverseTimeDecay(args.lr, 1, args.decay)
    return CosineDecay(args.lr, max(total_steps(args, examples), 1))


def total_steps(args, examples):
    """Optimizer steps in --epochs epochs over the examples --validation-split leaves for training."""
    train_examples = int(examples * (1.0 - args.validation_split))
    return args.epochs * -(-train_examples // args.batch_size)


def warn_if_schedule_ends(schedule, args, examples):
    """A resumed cosine schedule keeps the length of the run it started in: say so when
    --epochs now asks for steps beyond its end (they would use its final rate)."""
    from ..optim.schedules import CosineDecay

    steps = total_steps(args, examples)
    if isinstance(schedule, CosineDecay) and steps > schedule.decay_steps:
        print(f"tensornet: note: the saved cosine schedule ends at step {int(schedule.decay_steps)}; the "
              f"{steps - int(schedule.decay_steps)} steps after it use its final rate "
              f"{schedule(schedule.decay_steps):g}", flush=True)
