"""The entry point of ``tensornet`` and ``python -m tensornet``: parse, run the command, and turn
every expected failure into one line on stderr and an exit status (2: a bad argument or input,
3: the training diverged, 130: interrupted), never a traceback."""
from __future__ import annotations

import os
import sys

from .parser import parse


def main(argv=None, args=None) -> int:
    """Run the command line ``argv`` (``sys.argv[1:]`` when None), or the parsed ``args``;
    returns the exit status."""
    if args is None:
        try:
            args = parse(argv)
        except SystemExit as exc:  # --help, --version, or a usage error already printed
            return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "distributed", False):
        from .distributed import run_distributed

        return run_distributed(args, lambda parsed: main(args=parsed))
    return _run(args)


def _run(args) -> int:
    from ..training.errors import DeviceOutOfMemoryError, DivergenceError, TrainingInterrupted
    from .train import checkpoint_dir

    try:
        if args.command == "train":
            from .train import train

            train(args)
        else:
            from .info import info

            return info(args.backend, args.check)
    except TrainingInterrupted as exc:
        resume = f"; continue with --resume {checkpoint_dir(args)}" if exc.checkpoints else ""
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
    from .train import checkpoint_dir

    directory = checkpoint_dir(args)
    if not directory or not os.path.isdir(directory):
        return ""
    from ..models import CheckpointDirectory

    newest = CheckpointDirectory(directory).newest()
    return f" The newest checkpoint, {newest}, is intact." if newest else ""
