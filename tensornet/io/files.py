"""Durable file replacement: write beside the target, fsync, rename over it, fsync the directory."""
from __future__ import annotations

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, suffix=".tmp"):
    """Yield a binary file that replaces ``path`` when the block ends without an exception.

    The data goes to a temporary file in ``path``'s directory, is flushed and fsync'ed, then
    renamed over ``path`` (atomic on POSIX) and the directory fsync'ed, so a crash leaves the old
    file or the new one, never a torn one. On an exception the temporary file is removed and
    ``path`` is untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def fsync_directory(directory):
    """Make a rename in ``directory`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
