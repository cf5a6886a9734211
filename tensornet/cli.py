"""Command line: ``tensornet train`` (Fashion-MNIST MLP, end to end) and ``tensornet info``."""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

DEFAULTS = {"epochs": 10, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "schedule": "cosine", "decay": 1e-4,
            "hidden": "512,512", "seed": 0, "validation_split": 1 / 12}


def _hidden(text):
    try:
        units = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated positive ints like 512,512; got {text!r}")
    if any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"--hidden sizes must be positive; got {text!r}")
    return units


def build_parser():
    parser = argparse.ArgumentParser(prog="tensornet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train an MLP on Fashion-MNIST (or MNIST) and print test accuracy")
    train.add_argument("--dataset", choices=("fashion_mnist", "mnist"), default="fashion_mnist")
    train.add_argument("--data", metavar="DIR", default=None,
                       help="directory holding the four IDX files (default: search $TENSORNET_DATA, the cache, "
                            "/usr/share/datasets, then download)")
    train.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    train.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    train.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                       help="mlp: Dense layers (--hidden); cnn: tensornet.models.presets.fashion_cnn, two conv and "
                            "two pool layers (peak --lr 0.05 unless given)")
    train.add_argument("--lr", type=float, default=None, help="initial learning rate (default 0.1; 0.05 with --model cnn)")
    train.add_argument("--momentum", type=float, default=DEFAULTS["momentum"])
    train.add_argument("--schedule", choices=("cosine", "inverse_time"), default=DEFAULTS["schedule"],
                       help="learning-rate schedule over the step count t: cosine, lr_t = lr (1 + cos(pi t / T)) "
                            "/ 2 with T the run's total steps; or inverse_time, lr_t = lr / (1 + decay t)")
    train.add_argument("--decay", type=float, default=DEFAULTS["decay"],
                       help="inverse-time decay per step (with --schedule inverse_time)")
    train.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--hidden", type=_hidden, default=_hidden(DEFAULTS["hidden"]),
                       help="hidden layer sizes, comma-separated (default 512,512)")
    train.add_argument("--activation", default="relu")
    train.add_argument("--validation-split", type=float, default=DEFAULTS["validation_split"],
                       help="fraction of the training set held out for validation (default 1/12: 5,000)")
    train.add_argument("--backend", choices=("auto", "numpy", "cupy"), default=None,
                       help="default: $TENSORNET_BACKEND, else auto (CuPy when a GPU is usable)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    train.add_argument("--deterministic", action="store_true",
                       help="deterministic mode (tensornet.backend.set_deterministic): bitwise repeatable "
                            "runs on a GPU even with other streams in the process")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    train.add_argument("--save", metavar="PATH", default=None,
                       help="write the model here (.npz) after every epoch and at the end: an interrupted run "
                            "leaves its last complete epoch, which --resume continues")
    train.add_argument("--resume", metavar="PATH", default=None,
                       help="continue the run saved at PATH up to --epochs in all (the model, optimizer and "
                            "data order come from the file; model options are ignored). PATH is a model file "
                            "(saved back to it unless --save names another) or a --checkpoint-dir directory "
                            "(its newest complete checkpoint, mid-epoch ones included; checkpoints go on "
                            "being written there)")
    train.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                       help="write crash-safe checkpoints into DIR (at the start, every "
                            "--checkpoint-every-epochs epochs, every --checkpoint-every-steps steps, and on "
                            "Ctrl-C), keeping the newest --keep-checkpoints; continue with --resume DIR")
    train.add_argument("--checkpoint-every-epochs", type=int, default=1, metavar="N")
    train.add_argument("--checkpoint-every-steps", type=int, default=None, metavar="N")
    train.add_argument("--keep-checkpoints", type=int, default=3, metavar="K")
    train.add_argument("--history", metavar="PATH", default=None,
                       help="write the per-epoch history as JSON (.json) or CSV (default: beside the saved "
                            "model, MODEL.history.csv)")
    train.add_argument("--plot", metavar="PATH", default=None,
                       help="draw loss and accuracy curves, training and validation, into PATH (.png, .svg, "
                            ".pdf; needs matplotlib)")
    train.add_argument("--distributed", action="store_true",
                       help="train data-parallel over the ranks of an MPI launch (mpirun -n K tensornet train "
                            "--distributed): --batch-size is the global batch; rank 0 prints and writes files")
    info_parser = commands.add_parser("info", help="print versions, backend and device")
    info_parser.add_argument("--backend", choices=("auto", "numpy", "cupy"), default=None,
                             help="the backend to describe and check (default: $TENSORNET_BACKEND, else auto)")
    info_parser.add_argument("--check", action="store_true",
                             help="run each kernel of the backend against its reference on a small random input "
                                  "and say which pass (exit status 1 when any fails)")
    return parser


def load(dataset, path):
    """(x_train, y_train), (x_test, y_test) as float pixels in [0, 1] and integer labels."""
    from .datasets import fashion_mnist, mnist

    module = fashion_mnist if dataset == "fashion_mnist" else mnist
    (x_train, y_train), (x_test, y_test) = module.load_data(path)
    return (x_train, y_train), (x_test, y_test)


def train(args) -> float:
    from .backend import get_backend, use_backend
    from .nn.layers import Dense, Flatten
    from .models import Sequential
    from .optim.optimizers import SGD
    from .utils import to_categorical

    if args.deterministic:
        from .backend import set_deterministic

        set_deterministic(True)
    backend = get_backend(args.backend)
    if args.lr is None:
        args.lr = 0.05 if getattr(args, "model", "mlp") == "cnn" else DEFAULTS["lr"]
    schedule = "cosine" if args.schedule == "cosine" else f"inverse_time decay={args.decay}"
    network = "model cnn" if getattr(args, "model", "mlp") == "cnn" else f"hidden {args.hidden}"
    print(f"tensornet: backend {backend.name}, dataset {args.dataset}, {network}, "
          f"SGD(lr={args.lr} {schedule}, momentum={args.momentum}, nesterov={args.nesterov}), "
          f"batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}", flush=True)
    started = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = load(args.dataset, args.data)
    x_train = x_train.astype(args.dtype) / 255.0
    x_test = x_test.astype(args.dtype) / 255.0
    y_train, y_test = to_categorical(y_train, 10, args.dtype), to_categorical(y_test, 10, args.dtype)
    checkpoint_dir = _checkpoint_dir(args)
    with use_backend(backend):
        if args.resume:
            model = _resume(args.resume)
            _warn_if_schedule_ends(model.optimizer.schedule, args, len(x_train))
        else:
            _refuse_to_overwrite_run(checkpoint_dir)
            if getattr(args, "model", "mlp") == "cnn":
                from .models.presets import fashion_cnn

                x_train, x_test = x_train.reshape(-1, 28, 28, 1), x_test.reshape(-1, 28, 28, 1)
                model = fashion_cnn(dtype=args.dtype, seed=args.seed)
            else:
                model = Sequential(dtype=args.dtype, seed=args.seed)
                model.add(Flatten(input_shape=x_train.shape[1:]))
                for units in args.hidden:
                    model.add(Dense(units, activation=args.activation))
                model.add(Dense(10, activation="softmax"))
            model.compile(loss="categorical_crossentropy", metrics=["accuracy"],
                          optimizer=SGD(learning_rate=_learning_rate(args, len(x_train)), momentum=args.momentum,
                                        nesterov=args.nesterov, weight_decay=args.weight_decay))
        if args.verbose:
            model.summary()
        save_path = args.save or (args.resume if args.resume and not os.path.isdir(args.resume) else None)
        callbacks = []
        if save_path:
            from .training.callbacks import ModelCheckpoint

            callbacks.append(ModelCheckpoint(save_path))
        if checkpoint_dir:
            from .training.callbacks import Checkpoints

            callbacks.append(Checkpoints(checkpoint_dir, every_epochs=args.checkpoint_every_epochs,
                                         every_steps=args.checkpoint_every_steps, keep=args.keep_checkpoints))
        model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=args.verbose,
                  validation_split=args.validation_split, callbacks=callbacks,
                  initial_epoch=min(model.epochs_completed, args.epochs))
        if args.verbose:
            print(f"training step: {model.step_path}", flush=True)
        loss, accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
        _write_outputs(model, save_path, args)
    elapsed = time.perf_counter() - started
    print(f"test loss: {loss:.4f} - test accuracy: {accuracy:.4f} ({accuracy * 100:.2f}%) - "
          f"wall time {elapsed:.1f}s", flush=True)
    return accuracy


def _checkpoint_dir(args):
    """The run's checkpoint directory: --checkpoint-dir, or the directory --resume names."""
    if getattr(args, "checkpoint_dir", None):
        return args.checkpoint_dir
    resume = getattr(args, "resume", None)
    return resume if resume and os.path.isdir(resume) else None


def _resume(path):
    """The model saved at ``path``: a model file, or the newest complete checkpoint in a
    checkpoint directory."""
    if os.path.isdir(path):
        from .models import CheckpointDirectory, load_checkpoint

        source = CheckpointDirectory(path).newest()
        if source is None:
            raise FileNotFoundError(f"--resume {path}: the directory holds no complete checkpoint")
        model = load_checkpoint(source)
    else:
        from .models import load_model

        model, source = load_model(path), path
    point = model.resume_point
    where = (f"in epoch {point.epoch + 1} after batch {point.batch}" if point is not None
             else f"after epoch {model.epochs_completed}")
    print(f"tensornet: resuming {source} {where} (optimizer step {model.optimizer.iterations})", flush=True)
    return model


def _refuse_to_overwrite_run(directory):
    """A fresh run must not mix its checkpoints with another run's."""
    if directory and os.path.isdir(directory):
        from .models import CheckpointDirectory

        newest = CheckpointDirectory(directory).newest(verify=False)
        if newest is not None:
            raise ValueError(f"--checkpoint-dir {directory} already holds checkpoints of a run (newest: {newest}); "
                             f"continue it with --resume {directory}, or choose another directory")


def _learning_rate(args, examples):
    """The schedule --schedule names: cosine decay to 0 over the run's steps, or inverse time."""
    from .optim.schedules import CosineDecay, InverseTimeDecay

    if args.schedule == "inverse_time":
        return InverseTimeDecay(args.lr, 1, args.decay)
    return CosineDecay(args.lr, max(_total_steps(args, examples), 1))


def _total_steps(args, examples):
    """Optimizer steps in --epochs epochs over the examples --validation-split leaves for training."""
    train_examples = int(examples * (1.0 - args.validation_split))
    return args.epochs * -(-train_examples // args.batch_size)


def _warn_if_schedule_ends(schedule, args, examples):
    """A resumed cosine schedule keeps the length of the run it started in: say so when
    --epochs now asks for steps beyond its end (they would use its final rate)."""
    from .optim.schedules import CosineDecay

    total_steps = _total_steps(args, examples)
    if isinstance(schedule, CosineDecay) and total_steps > schedule.decay_steps:
        print(f"tensornet: note: the saved cosine schedule ends at step {int(schedule.decay_steps)}; the "
              f"{total_steps - int(schedule.decay_steps)} steps after it use its final rate "
              f"{schedule(schedule.decay_steps):g}", flush=True)


def _write_outputs(model, save_path, args):
    """The final model (--save), the history (--history, or beside the model) and the plot (--plot),
    written by rank 0 only in a data-parallel run."""
    from .distributed import is_root

    if not is_root():
        return
    import os

    from .models import history as saving_history

    if save_path:
        model.save(save_path)
        print(f"saved model to {save_path}", flush=True)
    logs, epochs = saving_history.full_history(model)
    history_path = args.history
    if history_path is None and save_path:
        history_path = os.path.splitext(save_path)[0] + ".history.csv"
    if history_path:
        saving_history.write_history(logs, epochs, history_path)
        print(f"wrote history to {history_path}", flush=True)
    if args.plot:
        from . import plot

        from .training.callbacks import History

        history = History()
        history.history, history.epoch = logs, epochs
        hidden = "-".join(str(layer.units) for layer in model.layers[:-1] if hasattr(layer, "units"))
        plot.history(history, args.plot, title=f"{args.dataset}, MLP {hidden or '-'}: training curves")
        print(f"wrote plot to {args.plot}", flush=True)


def info(backend_name=None, check=False) -> int:
    """Print versions, backend and device; with ``check``, each kernel's self-check line and a
    summary (:mod:`tensornet.backend.self_check`). Returns the exit status."""
    import numpy

    from .version import __version__
    from .backend import cupy_status, get_backend

    print(f"tensornet {__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"platform {platform.platform()}, {os.cpu_count()} CPU(s)")
    print(f"numpy {numpy.__version__}")
    usable, reason = cupy_status()
    print(f"cupy: {'usable' if usable else 'not usable'} ({reason})")
    env = os.environ.get("TENSORNET_BACKEND")
    backend = get_backend(backend_name)
    print(f"backend: {backend.name} (TENSORNET_BACKEND={env!r}; auto picks cupy only when usable)")
    for key, value in backend.device_info().items():
        print(f"  {key}: {value}")
    if not check:
        return 0
    from .backend.self_check import check_backend

    results = check_backend(backend)
    for result in results:
        print(f"{'PASS' if result.passed else 'FAIL'} {result.name} ({result.detail})")
    failed = [r.name for r in results if not r.passed]
    print(f"check: {len(results) - len(failed)} of {len(results)} kernel checks pass on the {backend.name} backend"
          + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def main(argv=None, args=None) -> int:
    from .training.errors import DeviceOutOfMemoryError, DivergenceError, TrainingInterrupted

    args = build_parser().parse_args(argv) if args is None else args
    if getattr(args, "distributed", False):
        return _distributed_main(args)
    try:
        if args.command == "train":
            train(args)
        else:
            return info(args.backend, args.check)
    except TrainingInterrupted as exc:
        resume = f"; continue with --resume {_checkpoint_dir(args)}" if exc.checkpoints else ""
        print(f"tensornet: {exc}{resume}", file=sys.stderr, flush=True)
        return 130
    except KeyboardInterrupt:
        saved = getattr(args, "save", None) or getattr(args, "resume", None)
        kept = (f"; {saved} holds the last complete epoch (continue with --resume {saved})"
                if saved and os.path.isfile(saved) else "; nothing was saved (use --checkpoint-dir DIR to keep "
                                                          "every few steps)")
        print(f"tensornet: interrupted{kept}", file=sys.stderr, flush=True)
        return 130
    except DivergenceError as exc:
        print(f"tensornet: error: {exc}{_newest_checkpoint_note(args)}", file=sys.stderr)
        return 3
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError, ImportError,
            DeviceOutOfMemoryError) as exc:
        print(f"tensornet: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _newest_checkpoint_note(args) -> str:
    directory = _checkpoint_dir(args)
    if not directory or not os.path.isdir(directory):
        return ""
    from .models import CheckpointDirectory

    newest = CheckpointDirectory(directory).newest()
    return f" The newest checkpoint, {newest}, is intact." if newest else ""


def _distributed_main(args) -> int:
    """``train --distributed``: join the MPI world; ranks other than 0 print nothing and write no
    file; a rank that stops on an error ends every rank (non-zero exit), naming itself."""
    import contextlib
    import io

    from .distributed import abort, init

    world = init()
    args.distributed = False
    with contextlib.redirect_stdout(sys.stdout if world.is_root else io.StringIO()):
        status = main(args=args)
    if status and world.size > 1:
        abort(world, status, f"tensornet train stopped with exit status {status}")
    return status
