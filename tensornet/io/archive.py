"""The model file format: one ``.npz`` archive (a zip of ``.npy`` arrays) holding a JSON
``header`` (as uint8 bytes), named arrays, and a ``checksum``: SHA-256 (hex, as uint8 bytes) of the
header and of every array's name, dtype, shape and bytes, verified on read.

The file is written atomically (:func:`tensornet.io.files.atomic_write`): to a temporary file in
the same directory, flushed and fsync'ed, then renamed over the target, so a crash leaves either
the old file or the new one. It is read by the bounded reader :func:`tensornet.io.npz.read_npz`,
which never unpickles and checks every declared size against the file before allocating.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy

from .files import atomic_write
from .npz import NpzFormatError, read_npz

#: The header's ``format`` field, and the newest format version this code reads and writes.
FORMAT = "tensornet.model"
VERSION = 1


def _checksum(header_bytes: bytes, arrays: dict) -> str:
    digest = hashlib.sha256()
    digest.update(header_bytes)
    for name in sorted(arrays):
        array = numpy.ascontiguousarray(arrays[name])
        digest.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_archive(path, header: dict, arrays: dict):
    """Write ``header`` (JSON-able) and ``arrays`` (name -> NumPy array) to ``path`` atomically."""
    path = os.fspath(path)
    arrays = {name: numpy.ascontiguousarray(value) for name, value in arrays.items()}
    header = dict(header, arrays={name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays.items()})
    header_bytes = json.dumps(header, sort_keys=True).encode()
    checksum = _checksum(header_bytes, arrays)
    members = {"header": numpy.frombuffer(header_bytes, dtype=numpy.uint8),
               "checksum": numpy.frombuffer(checksum.encode(), dtype=numpy.uint8), **arrays}
    with atomic_write(path) as handle:
        numpy.savez(handle, **members)


def read_archive(path):
    """(header, arrays) from a file written by :func:`write_archive`, checksum verified.

    The arrays are read with :func:`tensornet.io.npz.read_npz`, which checks every size the file
    declares against what it holds before allocating, so a damaged or hostile file raises a
    ``ValueError`` naming it (never allocates without bound). The header must be a JSON object
    of this format and version whose index of arrays matches the arrays exactly."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no saved model at {path!r}")
    try:
        members = read_npz(path)
    except NpzFormatError as exc:
        raise ValueError(f"{path!r} is damaged: {exc.problem}") from None
    except OSError as exc:  # unreadable: a directory, no permission...
        problem = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{path!r} is not a tensornet model file (or is damaged): {problem}") from None
    if "header" not in members or "checksum" not in members:
        raise ValueError(f"{path!r} is not a tensornet model file: it has no header or no checksum")
    header_bytes = members.pop("header").tobytes()
    stored = members.pop("checksum").tobytes().decode("ascii", "replace")
    actual = _checksum(header_bytes, members)
    if stored != actual:
        raise ValueError(f"{path!r} failed its checksum (stored {stored[:16]}..., computed {actual[:16]}...): "
                         "the file is damaged or was modified")
    try:
        header = json.loads(header_bytes.decode())
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"{path!r} is damaged: its header is not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"{path!r} is not a tensornet model file (format {found!r})")
    version = header.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path!r} is damaged: its format version {version!r} is not an integer")
    if version > VERSION:
        raise ValueError(f"{path!r} was written by a newer tensornet (format version {header['version']}; "
                         f"this one reads up to {VERSION})")
    index = header.get("arrays", {})
    if not isinstance(index, dict) or set(index) != set(members):
        raise ValueError(f"{path!r}: the arrays in the file do not match its header")
    for name, array in members.items():
        if index[name] != {"dtype": array.dtype.str, "shape": list(array.shape)}:
            raise ValueError(f"{path!r}: array {name!r} is {array.dtype.str} of shape {list(array.shape)}, "
                             f"its header says {index[name]!r}")
    return header, members
