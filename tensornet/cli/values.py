"""The value types of the command line's options: each turns one option's text into its value or
raises :class:`argparse.ArgumentTypeError` with a message naming what was wrong, which the parser
prints as one line (``tensornet train: error: argument --batch-size: ...``) with exit status 2.

Every check here needs nothing but the text, so a bad value stops the command before any data
set is read.
"""
from __future__ import annotations

import argparse
import math
import os


def _number(text, kind, what):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; got {text!r}")
    return value


def positive_int(text):
    """An int >= 1 (epochs, batch size, checkpoint intervals)."""
    value = _number(text, int, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (>= 1); got {text!r}")
    return value


def non_negative_int(text):
    """An int >= 0 (the seed)."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; got {text!r}")
    return value


def positive_float(text):
    """A finite number > 0 (the learning rate)."""
    value = _number(text, float, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text!r}")
    return value


def non_negative_float(text):
    """A finite number >= 0 (momentum, decay, weight decay)."""
    value = _number(text, float, "a number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0; got {text!r}")
    return value


def fraction(text):
    """A number in [0, 1), written as a decimal (``0.1``) or a ratio (``1/12``)."""
    numerator, slash, denominator = str(text).partition("/")
    if slash:
        top = _number(numerator.strip(), float, "a number or a ratio like 1/12")
        bottom = _number(denominator.strip(), float, "a number or a ratio like 1/12")
        if bottom == 0:
            raise argparse.ArgumentTypeError(f"the ratio's denominator is 0 in {text!r}")
        value = top / bottom
    else:
        value = _number(text, float, "a number in [0, 1) or a ratio like 1/12")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1); got {text!r}")
    return value


def hidden_sizes(text):
    """Comma-separated positive layer widths, ``512,512``; an empty item (``512,,512``) or a
    trailing comma is an error, not skipped."""
    parts = [part.strip() for part in str(text).split(",")]
    if not text.strip() or any(not part for part in parts):
        raise argparse.ArgumentTypeError(f"takes comma-separated positive integers like 512,512, with no empty "
                                         f"item; got {text!r}")
    units = []
    for part in parts:
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not an integer in {text!r} (expected e.g. 512,512)") \
                from None
        if size < 1:
            raise argparse.ArgumentTypeError(f"layer sizes must be positive; got {size} in {text!r}")
        units.append(size)
    return units


def existing_directory(text):
    """A directory that exists (``--data``)."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return text


def saved_run(text):
    """A model file or checkpoint directory that exists (``--resume``)."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no saved model or checkpoint directory at {text!r}")
    return text


def writable_file(text):
    """A file path whose directory exists and which is not itself a directory (``--save``,
    ``--history``, ``--plot``)."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file path")
    parent = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"the directory {parent!r} of {text!r} does not exist")
    return text


def directory_to_write(text):
    """A directory that exists or can be created: not a file, its parent an existing directory
    (``--checkpoint-dir``)."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a directory")
    parent = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"the directory {parent!r} that would hold {text!r} does not exist")
    return text
