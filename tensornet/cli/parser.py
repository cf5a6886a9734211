"""The argument parser of ``tensornet``: its commands (``train``, ``info``), every option with a
help line and its default, ``--version``, and errors printed as one line with exit status 2."""
from __future__ import annotations

import argparse
import sys

from ..nn.activations import NAMES as ACTIVATIONS
from ..version import __version__
from . import values

#: The train command's defaults (also what the README's figures are computed with).
DEFAULTS = {"model": "mlp", "epochs": 10, "batch_size": 128, "momentum": 0.9, "schedule": "cosine",
            "decay": 1e-4, "hidden": "512,512", "seed": 0, "validation_split": "1/12", "verbose": "auto"}

#: The network kinds ``--model`` builds.
MODELS = ("mlp", "cnn")

#: The initial learning rate of each ``--model`` when ``--lr`` is not given.
MODEL_LEARNING_RATES = {"mlp": 0.1, "cnn": 0.05}

DESCRIPTION = """\
Train a network on Fashion-MNIST (or MNIST) from the command line, and describe this
installation. `tensornet train` with no options trains a 784-512-512-10 MLP for 10 epochs
and prints its test accuracy; `tensornet info` prints the versions, the backend and why it
was chosen, and with --check runs every kernel against its reference."""

EPILOG = """\
examples:
  tensornet train --epochs 20 --hidden 1024,512 --lr 0.05 --seed 1
  tensornet train --checkpoint-dir runs/a      then, after Ctrl-C or a crash:  tensornet train --resume runs/a
  tensornet info --check
`tensornet COMMAND --help` lists a command's options."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's help with ``(default: ...)`` appended, except where the default is None or
    False (the help line then says what happens without the option); descriptions keep their
    line breaks."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``PROG: error: MESSAGE (see PROG --help)``,
    with exit status 2 (argparse's status for a usage error)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tensornet", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"tensornet {__version__}",
                        help="print tensornet's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    train = commands.add_parser("train", help="train a network on Fashion-MNIST (or MNIST) and print its test accuracy",
                                description="Train a network on Fashion-MNIST (or MNIST), then print its test "
                                            "loss and accuracy.", formatter_class=HelpFormatter)
    _add_train_options(train)
    info = commands.add_parser("info", help="print versions, the backend and why, the device, the CPU threads",
                               description="Print one line each for Python, NumPy, Numba, the BLAS, CuPy and "
                                           "CUDA, the backend and why it was chosen, its device and the CPU "
                                           "threads; with --check, every kernel against its reference.",
                               formatter_class=HelpFormatter)
    info.add_argument("--backend", choices=("auto", "numpy", "cupy"), default=None,
                      help="the backend to describe and check (without it: $TENSORNET_BACKEND, else auto)")
    info.add_argument("--check", action="store_true",
                      help="run each kernel of the backend against its reference on a small random input and say "
                           "which pass (exit status 1 when any fails)")
    parser.command_parsers = {"train": train, "info": info}
    return parser


def _add_train_options(train):
    data = train.add_argument_group("data")
    data.add_argument("--dataset", choices=("fashion_mnist", "mnist"), default="fashion_mnist",
                      help="the data set to train and test on")
    data.add_argument("--data", metavar="DIR", type=values.existing_directory, default=None,
                      help="directory holding the four IDX files (without it: $TENSORNET_DATA, the cache, "
                           "/usr/share/datasets, then a download)")
    data.add_argument("--validation-split", metavar="FRACTION", type=values.fraction,
                      default=DEFAULTS["validation_split"],
                      help="fraction of the training set held out for validation, in [0, 1), as 0.1 or 1/12 "
                           "(1/12 is 5,000 of Fashion-MNIST's 60,000)")
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=MODELS, default=DEFAULTS["model"],
                       help="the network: mlp, Dense layers of the --hidden sizes then a 10-way softmax; cnn, "
                            "tensornet.models.presets.fashion_cnn (two conv and two pool layers, then Dense 128)")
    model.add_argument("--hidden", metavar="SIZES", type=values.hidden_sizes, default=DEFAULTS["hidden"],
                       help="hidden layer sizes, comma-separated")
    model.add_argument("--activation", choices=tuple(n for n in ACTIVATIONS if n != "softmax"), default="relu",
                       metavar="NAME", help=f"the hidden layers' activation: one of "
                                            f"{', '.join(n for n in ACTIVATIONS if n != 'softmax')}")
    model.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="the floating-point type of the weights and the computation")
    model.add_argument("--seed", type=values.non_negative_int, default=DEFAULTS["seed"],
                       help="seed of the initial weights, the validation split and the batch order")
    optimizer = train.add_argument_group("optimizer (SGD)")
    optimizer.add_argument("--epochs", type=values.positive_int, default=DEFAULTS["epochs"],
                           help="epochs to train (with --resume: epochs in all, those already done included)")
    optimizer.add_argument("--batch-size", metavar="N", type=values.positive_int, default=DEFAULTS["batch_size"],
                           help="examples per optimizer step (with --distributed: the global batch)")
    optimizer.add_argument("--lr", type=values.positive_float, default=None,
                           help="initial learning rate (default: 0.1 with --model mlp, 0.05 with --model cnn)")
    optimizer.add_argument("--momentum", type=values.non_negative_float, default=DEFAULTS["momentum"],
                           help="SGD momentum (0 for plain SGD; Nesterov needs it > 0)")
    optimizer.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                           help="Nesterov momentum")
    optimizer.add_argument("--schedule", choices=("cosine", "inverse_time"), default=DEFAULTS["schedule"],
                           help="learning-rate schedule over the step count t: cosine, lr_t = lr (1 + cos(pi t / "
                                "T)) / 2 with T the run's total steps; or inverse_time, lr_t = lr / (1 + decay t)")
    optimizer.add_argument("--decay", type=values.non_negative_float, default=DEFAULTS["decay"],
                           help="inverse-time decay per step (with --schedule inverse_time)")
    optimizer.add_argument("--weight-decay", type=values.non_negative_float, default=0.0,
                           help="L2 weight decay added to the gradient: g = dL/dw + weight_decay w")
    run = train.add_argument_group("run")
    run.add_argument("--backend", choices=("auto", "numpy", "cupy"), default=None,
                     help="the backend (without it: $TENSORNET_BACKEND, else auto: CuPy when a GPU is usable)")
    run.add_argument("--deterministic", action="store_true",
                     help="deterministic mode (tensornet.backend.set_deterministic): bitwise repeatable runs on a "
                          "GPU even with other streams in the process")
    run.add_argument("--verbose", choices=("auto", "0", "1", "2"), default=DEFAULTS["verbose"],
                     help="output: auto and 1, a progress bar per epoch on a terminal and one line per epoch "
                          "otherwise (Keras' default); 2, one line per epoch; 0, only the result")
    run.add_argument("--distributed", action="store_true",
                     help="train data-parallel over the ranks of an MPI launch (mpirun -n K tensornet train "
                          "--distributed): --batch-size is the global batch; rank 0 prints and writes files")
    files = train.add_argument_group("files")
    files.add_argument("--save", metavar="PATH", type=values.writable_file, default=None,
                       help="write the model here (.npz) after every epoch and at the end: an interrupted run "
                            "leaves its last complete epoch, which --resume continues")
    files.add_argument("--resume", metavar="PATH", type=values.saved_run, default=None,
                       help="continue the run saved at PATH up to --epochs in all (the model, optimizer and data "
                            "order come from the file; model options are ignored). PATH is a model file (saved "
                            "back to it unless --save names another) or a --checkpoint-dir directory (its newest "
                            "complete checkpoint, mid-epoch ones included; checkpoints go on being written there)")
    files.add_argument("--checkpoint-dir", metavar="DIR", type=values.directory_to_write, default=None,
                       help="write crash-safe checkpoints into DIR (at the start, every --checkpoint-every-epochs "
                            "epochs, every --checkpoint-every-steps steps, and on Ctrl-C), keeping the newest "
                            "--keep-checkpoints; continue with --resume DIR")
    files.add_argument("--checkpoint-every-epochs", type=values.positive_int, default=None, metavar="N",
                       help="epochs between two checkpoints (with --checkpoint-dir; default: 1)")
    files.add_argument("--checkpoint-every-steps", type=values.positive_int, default=None, metavar="N",
                       help="also write a checkpoint every N optimizer steps (with --checkpoint-dir; without it: "
                            "only at epoch ends)")
    files.add_argument("--keep-checkpoints", type=values.positive_int, default=None, metavar="K",
                       help="checkpoints kept in --checkpoint-dir, older ones deleted (default: 3)")
    files.add_argument("--history", metavar="PATH", type=values.writable_file, default=None,
                       help="write the per-epoch history as JSON (.json) or CSV (without it: beside the saved "
                            "model, MODEL.history.csv)")
    files.add_argument("--plot", metavar="PATH", type=values.writable_file, default=None,
                       help="draw loss and accuracy curves, training and validation, into PATH (.png, .svg, .pdf; "
                            "needs matplotlib)")


def parse(argv=None) -> argparse.Namespace:
    """The arguments in ``argv`` (``sys.argv[1:]`` when None), checked as far as the text allows;
    ``--help``, ``--version`` and errors end in SystemExit."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    if unknown:
        parser.command_parsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "train":
        from .checks import check_train_arguments

        problem = check_train_arguments(args)
        if problem:
            parser.command_parsers["train"].error(problem)
        if args.lr is None:
            args.lr = MODEL_LEARNING_RATES[args.model]
    return args
