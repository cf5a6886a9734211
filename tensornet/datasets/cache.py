"""Locating dataset files on disk, and downloading them into the user cache.

:func:`find_dataset` looks for a dataset's files in these directories, in
order, and uses the first one that holds all of them:

1. the ``path`` argument, if given (no fall-through: if it lacks a file,
   :class:`FileNotFoundError` is raised);
2. ``$TENSORNET_DATA/<name>/``, then ``$TENSORNET_DATA/`` itself;
3. the user cache, ``$XDG_CACHE_HOME/tensornet/datasets/<name>/``
   (``~/.cache/tensornet/datasets/<name>/`` by default);
4. system directories, ``<d>/<name>/`` for each ``d`` in :data:`SYSTEM_DIRS`
   (Debian's ``dataset-fashion-mnist`` package installs into
   ``/usr/share/datasets/fashion-mnist/``).

Each file may be present gzip-compressed or raw (``x.gz`` or ``x``).  When no
directory holds them all, the missing ones are downloaded into the user
cache, each checked against a known SHA-256 digest and renamed into place
atomically.  The base URLs come from the ``urls`` argument, else from
``$TENSORNET_DATA_URL`` (whitespace-separated; ``{name}`` in a URL is
replaced by the dataset name), else from the caller's defaults.
"""

import os

from ..io.files import atomic_write

__all__ = ["SYSTEM_DIRS", "TIMEOUT", "DownloadError", "ChecksumError",
           "user_cache_dir", "search_dirs", "find_dataset", "download_file"]

#: System-wide directories searched last; each holds one folder per dataset.
SYSTEM_DIRS = ("/usr/share/datasets",)
#: Seconds to wait for a network connection or read before giving up.
TIMEOUT = 30.0
DATA_ENV = "TENSORNET_DATA"
URL_ENV = "TENSORNET_DATA_URL"


class DownloadError(OSError):
    """A dataset file could not be downloaded from any of its URLs."""


class ChecksumError(DownloadError):
    """A downloaded file's SHA-256 digest matched none of the known ones."""


def user_cache_dir(name=None):
    """Return the tensornet dataset cache directory (for ``name`` if given)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says to ignore relative paths
        base = os.path.join(os.path.expanduser("~"), ".cache")
    root = os.path.join(base, "tensornet", "datasets")
    return os.path.join(root, name) if name else root


def search_dirs(name):
    """Directories searched for dataset ``name`` (without an explicit path)."""
    dirs = []
    data = os.environ.get(DATA_ENV, "")
    if data:
        dirs += [os.path.join(data, name), data]
    dirs.append(user_cache_dir(name))
    dirs += [os.path.join(d, name) for d in SYSTEM_DIRS]
    return dirs


def _locate(directory, filename):
    """Path of ``filename`` in ``directory``, gzipped or raw; None if absent."""
    stem = filename[:-3] if filename.endswith(".gz") else filename
    for candidate in (filename, stem + ".gz", stem):
        full = os.path.join(directory, candidate)
        if os.path.isfile(full):
            return full
    return None


def _locate_all(directory, files):
    found = [_locate(directory, f) for f in files]
    missing = [f for f, p in zip(files, found) if p is None]
    return found, missing


def find_dataset(name, files, path=None, *, urls=None, default_urls=(),
                 sha256=None, timeout=None, hint=None):
    """Return the paths of ``files`` for dataset ``name``, downloading if needed.

    ``files`` are file names such as ``"train-images-idx3-ubyte.gz"``; the
    result lists one existing path per name, in the same order.  ``urls``
    (a string or a sequence) are base URLs to download from; without them
    ``$TENSORNET_DATA_URL`` is used, else ``default_urls``.  ``sha256``
    maps each file name to its expected hex digest or a tuple of accepted
    digests.  ``hint`` is appended to the error when downloading fails.
    """
    files = list(files)
    if path is not None:
        path = os.fspath(path)
        found, missing = _locate_all(path, files)
        if missing:
            raise FileNotFoundError(
                f"dataset {name!r}: directory {path} lacks {', '.join(missing)} "
                f"(gzipped or not)")
        return found
    for directory in search_dirs(name):
        found, missing = _locate_all(directory, files)
        if not missing:
            return found

    cache = user_cache_dir(name)
    found, _ = _locate_all(cache, files)
    bases = _base_urls(name, urls, default_urls)
    note = f"Dataset {name!r} was not found in {', '.join(search_dirs(name))}. {hint or ''}".rstrip()
    if not bases:
        raise DownloadError(f"no URL to download from. {note}")
    unchecked = [f for f, p in zip(files, found) if p is None and not (sha256 or {}).get(f)]
    if unchecked:
        raise ValueError(f"dataset {name!r}: no known SHA-256 digest for {', '.join(unchecked)}; "
                         f"refusing to download unchecked")
    for i, filename in enumerate(files):
        if found[i] is None:
            found[i] = download_file([b + filename for b in bases], os.path.join(cache, filename),
                                     sha256[filename], timeout=timeout, hint=note)
    return found


def _base_urls(name, urls, default_urls=()):
    if urls is None:
        urls = os.environ.get(URL_ENV, "").split() or default_urls
    if isinstance(urls, str):
        urls = [urls]
    return [u.replace("{name}", name).rstrip("/") + "/" for u in urls]


def download_file(urls, dest, sha256, *, timeout=None, hint=None):
    """Download the first of ``urls`` that works to ``dest``; return ``dest``.

    The data goes to a temporary file beside ``dest``, is fsynced, and is
    renamed onto ``dest`` only if its SHA-256 digest is one of ``sha256``
    (a hex string or a collection of them).  A URL that fails or serves
    other data is skipped for the next one; when none works,
    :class:`ChecksumError` (if some URL served wrong data) or
    :class:`DownloadError` is raised and no partial file is left behind.
    """
    import hashlib
    import http.client
    import urllib.request

    accepted = {sha256} if isinstance(sha256, str) else set(sha256)
    accepted = {d.lower() for d in accepted}
    timeout = TIMEOUT if timeout is None else timeout
    filename = os.path.basename(dest)
    failures, mismatch = [], None
    for url in [urls] if isinstance(urls, str) else urls:
        try:
            digest = hashlib.sha256()
            with atomic_write(dest, suffix=".part") as out:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    while chunk := response.read(1 << 16):
                        digest.update(chunk)
                        out.write(chunk)
                got = digest.hexdigest()
                if got not in accepted:  # leaving the block with an exception discards the download
                    raise ChecksumError(f"{filename}: SHA-256 mismatch for {url}: expected "
                                        f"{' or '.join(sorted(accepted))}, got {got}")
            return dest
        except ChecksumError as error:
            mismatch = error
            failures.append(f"{url}: checksum mismatch")
        except (OSError, http.client.HTTPException, ValueError) as e:
            failures.append(f"{url}: {e}")
    if mismatch is not None:
        raise mismatch
    raise DownloadError(f"could not download {filename} ({'; '.join(failures)}). {hint or ''}".rstrip())
