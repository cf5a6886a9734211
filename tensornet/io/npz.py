"""Bounded reading of ``.npz`` archives: every member's array, nothing allocated that the file
does not hold.

``numpy.load`` allocates each array from the shape its ``.npy`` header declares *before*
reading the data, so one damaged or hostile header (``shape: (10**12,)``) makes it allocate
without bound. :func:`read_npz` instead checks, before allocating anything of that size:

- the archive holds at most ``max_members`` members, none encrypted, every one stored
  uncompressed (``ZIP_STORED``, what ``numpy.savez`` writes) with equal stored and
  uncompressed sizes, lying inside the file;
- the members' sizes add up to no more than the file's size on disk (so members that overlap,
  a zip bomb's trick, cannot multiply the data);
- member names are unique;
- each member is a ``.npy`` (format 1.0 or 2.0) whose header parses, whose dtype holds no
  Python objects, has a non-zero size and no sub-array, whose shape has non-negative sizes, and
  whose header length plus shape x itemsize equals the member's size exactly.

Only then is a member read (into a buffer of its checked size; the zip CRC is verified) and
viewed as an array, without a further copy. Every failure raises :class:`NpzFormatError`, a
``ValueError`` whose message names the file and the problem.
"""
from __future__ import annotations

import io
import math
import os
import zipfile

import numpy
import numpy.lib.format as npy_format

__all__ = ["MAX_MEMBERS", "NpzFormatError", "read_npz"]

#: Most members an archive may have.
MAX_MEMBERS = 100_000
#: Longest ``.npy`` header accepted (numpy's own default limit).
MAX_HEADER_SIZE = 10_000
_MAX_PREFIX = npy_format.MAGIC_LEN + 4 + MAX_HEADER_SIZE  # magic, length field, header
_MAX_NDIM = 64
_CHUNK = 1 << 20


class NpzFormatError(ValueError):
    """An ``.npz`` file is damaged or not one :func:`read_npz` accepts; ``problem`` says why."""

    def __init__(self, path, problem):
        super().__init__(f"{path!r}: {problem}")
        self.path = path
        self.problem = problem


def read_npz(path, max_members=MAX_MEMBERS) -> dict:
    """{name: array} of the ``.npz`` at ``path`` (names without the ``.npy`` suffix, as
    ``numpy.load`` gives them), every size checked against the file before allocation.

    Opening the file may raise ``OSError`` (missing file, no permission); anything wrong with
    its content raises :class:`NpzFormatError`.
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            archive = zipfile.ZipFile(handle)
        except MemoryError:
            raise
        except Exception as exc:  # BadZipFile, OSError on a bad offset, struct/Unicode errors...
            raise NpzFormatError(path, f"not a zip archive ({type(exc).__name__}: {exc})") from None
        with archive:
            names = _check_members(path, archive.infolist(), size, max_members)
            return {name: _read_member(path, archive, info) for name, info in names.items()}


def _check_members(path, infos, size, max_members):
    """{name: ZipInfo} after the checks on the zip directory (see the module docstring)."""
    if len(infos) > max_members:
        raise NpzFormatError(path, f"{len(infos)} members, more than the {max_members} allowed")
    names, total = {}, 0
    for info in infos:
        member = info.filename
        if info.flag_bits & 0x1:
            raise NpzFormatError(path, f"member {member!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            raise NpzFormatError(path, f"member {member!r} is compressed (method {info.compress_type}); "
                                       "expected stored (uncompressed) members")
        if info.file_size != info.compress_size:
            raise NpzFormatError(path, f"member {member!r} is stored, yet its sizes differ "
                                       f"({info.compress_size} stored, {info.file_size} uncompressed)")
        if info.header_offset < 0 or info.header_offset + info.compress_size > size:
            raise NpzFormatError(path, f"member {member!r} ({info.compress_size} bytes at offset "
                                       f"{info.header_offset}) extends past the end of the {size}-byte file")
        total += info.compress_size
        if total > size:
            raise NpzFormatError(path, f"the members claim more than the {size} bytes the file holds "
                                       "(overlapping or damaged entries)")
        name = member[:-4] if member.endswith(".npy") else member
        if name in names:
            raise NpzFormatError(path, f"member {name!r} appears more than once")
        names[name] = info
    return names


def _read_member(path, archive, info):
    """The array of one member: bytes read into a buffer of the checked size, then viewed."""
    try:
        data = bytearray(info.file_size)
        with archive.open(info) as member:
            done = 0
            while done < info.file_size:
                chunk = member.read(min(_CHUNK, info.file_size - done))
                if not chunk:
                    break
                data[done:done + len(chunk)] = chunk
                done += len(chunk)
            if done < info.file_size or member.read(1):  # reaching the end verifies the CRC
                raise NpzFormatError(path, f"member {info.filename!r} does not hold the {info.file_size} "
                                           f"bytes its entry declares")
    except (NpzFormatError, MemoryError):
        raise
    except Exception as exc:  # BadZipFile (bad CRC, bad local header), EOFError, OSError...
        raise NpzFormatError(path, f"member {info.filename!r} is damaged ({type(exc).__name__}: {exc})") from None
    return _array(path, info.filename, data)


def _array(path, member, data):
    """View ``data`` (a whole ``.npy``) as the array its header declares, sizes checked first."""
    def fail(problem):
        return NpzFormatError(path, f"member {member!r}: {problem}")

    prefix = io.BytesIO(bytes(data[:_MAX_PREFIX]))
    try:
        version = npy_format.read_magic(prefix)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(prefix, MAX_HEADER_SIZE)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(prefix, MAX_HEADER_SIZE)
        else:
            raise fail(f".npy format version {version} is not supported (1.0 or 2.0 expected)")
    except NpzFormatError:
        raise
    except Exception as exc:  # ValueError mostly; SyntaxError, RecursionError from odd headers
        raise fail(f"bad .npy header ({type(exc).__name__}: {exc})") from None
    offset = prefix.tell()
    if dtype.hasobject:
        raise fail(f"dtype {dtype} holds Python objects, which are not loaded")
    if dtype.itemsize == 0 or dtype.subdtype is not None:
        raise fail(f"dtype {dtype} is not supported (zero-sized or a sub-array)")
    if len(shape) > _MAX_NDIM or any(n < 0 for n in shape):
        raise fail(f"bad shape {shape}")
    count = math.prod(shape)  # Python ints: no overflow, whatever the header says
    if offset + count * dtype.itemsize != len(data):
        raise fail(f"header declares shape {shape} of {dtype} ({count * dtype.itemsize} bytes of data), "
                   f"but the member holds {len(data) - offset}")
    try:
        if count == 0:
            return numpy.empty(shape, dtype)
        array = numpy.frombuffer(data, dtype=dtype, count=count, offset=offset)
        return array.reshape(shape, order="F" if fortran_order else "C")
    except (ValueError, TypeError, OverflowError) as exc:
        raise fail(f"cannot view the data as shape {shape} of {dtype} ({exc})") from None
