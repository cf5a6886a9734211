"""Strict reader (and a small writer) for the IDX file format used by MNIST.

An IDX file is a header followed by row-major data::

    byte 0-1   zero
    byte 2     type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
               0x0D float32, 0x0E float64; multi-byte values big-endian)
    byte 3     number of dimensions, ndim
    then       ndim big-endian uint32 sizes, then the data

Files may be gzip-compressed; compression is detected from the gzip magic
bytes (1f 8b), never from the file name.  The reader checks the size the
header declares against what the file holds *before* allocating anything
for it, so a corrupt or hostile header cannot make it allocate or
decompress without bound.  Every problem raises :class:`IDXFormatError`
with a message that names the file.
"""

import gzip
import os
import zlib

import numpy as np

__all__ = ["IDXFormatError", "read_idx", "read_images", "read_labels", "write_idx"]

#: IDX type code -> dtype of the data as stored (big-endian).
DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_NDIM = 4
IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand data by more than 1032:1; anything a gzip file of a
# given size could hold is below this bound (with slack for tiny files).
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file (or not the kind expected)."""


def _fail(path, problem):
    raise IDXFormatError(f"{path}: {problem}")


def _read_upto(f, n):
    """Read up to ``n`` bytes, in bounded chunks, into a bytearray."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _read(path, expect_magic=None):
    path = os.fspath(path)
    with open(path, "rb") as raw:
        file_size = os.fstat(raw.fileno()).st_size
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            return _parse(path, f, file_size, compressed, expect_magic)
        except (OSError, EOFError, zlib.error) as e:
            if not compressed:
                raise
            _fail(path, f"corrupt gzip data ({e})")
        finally:
            if compressed:
                f.close()


def _parse(path, f, file_size, compressed, expect_magic):
    head = _read_upto(f, 4)
    if len(head) < 4:
        _fail(path, f"too short for an IDX header: file holds {len(head)} bytes, need at least 4")
    magic = int.from_bytes(head, "big")
    code, ndim = head[2], head[3]
    if head[0] or head[1]:
        _fail(path, f"wrong magic 0x{magic:08x}, expected an IDX header (0x000008xx..0x00000Exx)")
    if code not in DTYPES:
        _fail(path, f"unknown IDX type code 0x{code:02x} in magic 0x{magic:08x} "
                    f"(known: {', '.join(f'0x{c:02x}' for c in DTYPES)})")
    if not 1 <= ndim <= MAX_NDIM:
        _fail(path, f"bad number of dimensions {ndim} in magic 0x{magic:08x}, expected 1..{MAX_NDIM}")
    if expect_magic is not None and magic != expect_magic:
        _fail(path, f"wrong magic 0x{magic:08x}, expected 0x{expect_magic:08x}")
    sizes = _read_upto(f, 4 * ndim)
    if len(sizes) < 4 * ndim:
        _fail(path, f"header shorter than declared: {ndim} dimensions need {4 * ndim} "
                    f"bytes of sizes, file has {len(sizes)}")
    shape = tuple(int.from_bytes(sizes[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
    dtype = DTYPES[code]
    expected = dtype.itemsize
    for n in shape:
        expected *= n  # Python ints: no overflow, whatever the header says
    header_len = 4 + 4 * ndim

    if compressed:
        limit = (file_size + 1024) * _MAX_DEFLATE_RATIO
        if expected > limit:
            _fail(path, f"truncated: header says {expected} data bytes (shape {shape}), "
                        f"more than a {file_size}-byte gzip file can hold")
        data = _read_upto(f, expected + 1)
        held = len(data)
    else:
        held = file_size - header_len
        data = None
    if held < expected:
        _fail(path, f"truncated: header says {expected} data bytes (shape {shape}), file holds {held}")
    if held > expected:
        more = "more" if compressed else str(held)
        _fail(path, f"trailing data: header says {expected} data bytes (shape {shape}), file holds {more}")
    if data is None:
        data = bytearray(expected)
        if f.readinto(data) != expected:
            _fail(path, "file changed while being read")
    try:
        arr = np.frombuffer(data, dtype=dtype).reshape(shape)
    except ValueError as e:  # a zero size beside sizes whose product NumPy cannot index
        _fail(path, f"shape {shape} cannot be held in a NumPy array ({e})")
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))


def read_idx(path):
    """Read an IDX file (raw or gzip) and return its data as a numpy array.

    The array has the shape the header declares and the native-endian
    dtype of the type code (uint8, int8, int16, int32, float32, float64).
    Raises :class:`IDXFormatError` on any malformed or truncated input.
    """
    return _read(path)


def read_images(path):
    """Read an IDX image file (magic 0x00000803): uint8 array (N, rows, cols)."""
    return _read(path, IMAGES_MAGIC)


def read_labels(path):
    """Read an IDX label file (magic 0x00000801): uint8 array (N,)."""
    return _read(path, LABELS_MAGIC)


def write_idx(path, array):
    """Write ``array`` as an IDX file; gzip-compressed if ``path`` ends in .gz.

    The dtype must be one IDX supports (uint8, int8, int16, int32, float32,
    float64) and the array must have 1..4 dimensions.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): c for c, dt in DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {array.dtype}")
    if not 1 <= array.ndim <= MAX_NDIM:
        raise ValueError(f"IDX arrays need 1..{MAX_NDIM} dimensions, got {array.ndim}")
    if any(n >= 2 ** 32 for n in array.shape):
        raise ValueError(f"IDX dimension sizes must fit in 32 bits: {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
    path = os.fspath(path)
    if path.endswith(".gz"):
        with open(path, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
            gz.write(payload)
    else:
        with open(path, "wb") as out:
            out.write(payload)
