"""Checks of ``tensornet train``'s options against each other, run after parsing and before any
data loads: each problem is one sentence naming the options and what to change."""
from __future__ import annotations

import importlib.util
import os

#: The file types ``--plot`` writes (matplotlib's savefig formats that make sense for curves).
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_train_arguments(args) -> str | None:
    """The first problem with the train options ``args``, or None when they can run."""
    if args.nesterov and args.momentum == 0:
        return "--nesterov needs --momentum > 0; give --momentum (e.g. 0.9) or --no-nesterov for plain SGD"
    checkpoint_dir = args.checkpoint_dir or (args.resume if args.resume and os.path.isdir(args.resume) else None)
    for option, value in (("--checkpoint-every-epochs", args.checkpoint_every_epochs),
                          ("--checkpoint-every-steps", args.checkpoint_every_steps),
                          ("--keep-checkpoints", args.keep_checkpoints)):
        if value is not None and checkpoint_dir is None:
            return f"{option} needs --checkpoint-dir DIR (or --resume of a checkpoint directory)"
    if args.plot:
        if os.path.splitext(args.plot)[1].lower() not in PLOT_SUFFIXES:
            return f"--plot {args.plot}: the file must end in {', '.join(PLOT_SUFFIXES)}"
        if importlib.util.find_spec("matplotlib") is None:
            return "--plot needs matplotlib, which is not installed (python -m pip install matplotlib)"
    if args.distributed and importlib.util.find_spec("mpi4py") is None:
        return ("--distributed needs mpi4py and an MPI, which are not installed "
                "(python -m pip install 'tensornet[distributed]')")
    return None
