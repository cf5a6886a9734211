"""Tests for tensornet.datasets.idx: round trips and every kind of malformed file."""

import gzip
import struct
import time

import numpy as np
import pytest

from tensornet.datasets import idx
from tensornet.datasets.idx import IDXFormatError


def _header(code, shape):
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", n) for n in shape)


def _write(path, payload, gz=False):
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def _random(dtype, shape, rng):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        a = rng.standard_normal(shape).astype(dtype) * 1e3
        a[a == 0] = 1.5
        return a
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    a[a == 0] = 1
    return a


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype,shape", [
    ("uint8", (7, 5, 3)), ("int8", (11,)), ("int16", (4, 6)),
    ("int32", (3, 2, 2, 5)), ("float32", (9, 4)), ("float64", (2, 3, 4)),
])
def test_round_trip_exact(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    a = _random(dtype, shape, rng)
    p = tmp_path / f"data.idx{suffix}"
    idx.write_idx(p, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    b = idx.read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable


def test_header_bytes_big_endian(tmp_path):
    p = tmp_path / "x.idx"
    idx.write_idx(p, np.array([[1, -2, 258]], dtype=np.int32))
    assert p.read_bytes() == (bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 3])
                              + bytes([0, 0, 0, 1, 255, 255, 255, 254, 0, 0, 1, 2]))
    np.testing.assert_array_equal(idx.read_idx(p), [[1, -2, 258]])


def test_gzip_detected_by_magic_not_name(tmp_path):
    rng = np.random.default_rng(1)
    a = _random("uint8", (5, 28, 28), rng)
    payload = _header(0x08, a.shape) + a.tobytes()
    gz_named_raw = _write(tmp_path / "images-idx3-ubyte", payload, gz=True)
    raw_named_gz = _write(tmp_path / "images-idx3-ubyte.gz", payload)
    np.testing.assert_array_equal(idx.read_idx(gz_named_raw), a)
    np.testing.assert_array_equal(idx.read_images(raw_named_gz), a)


def test_read_images_and_labels(tmp_path):
    rng = np.random.default_rng(2)
    x = _random("uint8", (6, 28, 28), rng)
    y = rng.integers(0, 10, 6).astype(np.uint8)
    idx.write_idx(tmp_path / "x.gz", x)
    idx.write_idx(tmp_path / "y.gz", y)
    np.testing.assert_array_equal(idx.read_images(tmp_path / "x.gz"), x)
    np.testing.assert_array_equal(idx.read_labels(tmp_path / "y.gz"), y)
    with pytest.raises(IDXFormatError, match=r"wrong magic 0x00000801, expected 0x00000803"):
        idx.read_images(tmp_path / "y.gz")
    with pytest.raises(IDXFormatError, match=r"wrong magic 0x00000803, expected 0x00000801"):
        idx.read_labels(tmp_path / "x.gz")
    idx.write_idx(tmp_path / "s.gz", x.astype(np.int8))
    with pytest.raises(IDXFormatError, match=r"wrong magic 0x00000903, expected 0x00000803"):
        idx.read_images(tmp_path / "s.gz")


def test_zero_length_dimension(tmp_path):
    p = _write(tmp_path / "e", _header(0x08, (0, 28, 28)))
    assert idx.read_images(p).shape == (0, 28, 28)


def test_error_is_value_error():
    assert issubclass(IDXFormatError, ValueError)


@pytest.mark.parametrize("gz", [False, True])
def test_wrong_magic(tmp_path, gz):
    p = _write(tmp_path / "train-images-idx3-ubyte.gz", b"\x01\x02\x08\x01" + b"\0" * 8, gz)
    with pytest.raises(IDXFormatError) as e:
        idx.read_idx(p)
    msg = str(e.value)
    assert msg.startswith(str(p) + ": ")
    assert "wrong magic 0x01020801" in msg


def test_not_idx_at_all(tmp_path):
    p = _write(tmp_path / "page.html", b"<html>404 Not Found</html>")
    with pytest.raises(IDXFormatError, match="wrong magic 0x3c68746d"):
        idx.read_idx(p)


@pytest.mark.parametrize("code", [0x00, 0x07, 0x0A, 0x0F, 0xFF])
def test_unknown_type_code(tmp_path, code):
    p = _write(tmp_path / "f", _header(code, (2,)) + b"\0\0")
    with pytest.raises(IDXFormatError, match=f"unknown IDX type code 0x{code:02x}"):
        idx.read_idx(p)


@pytest.mark.parametrize("ndim", [0, 5, 255])
def test_bad_ndim(tmp_path, ndim):
    p = _write(tmp_path / "f", bytes([0, 0, 8, ndim]) + b"\0\0\0\1" * ndim + b"\7")
    with pytest.raises(IDXFormatError, match=f"bad number of dimensions {ndim}"):
        idx.read_idx(p)


def test_truncated_data(tmp_path):
    p = _write(tmp_path / "train-images-idx3-ubyte.gz",
               _header(0x08, (60000, 28, 28)) + bytes(range(1, 251)) * 4)
    with pytest.raises(IDXFormatError) as e:
        idx.read_images(p)
    assert str(e.value) == (f"{p}: truncated: header says 47040000 data bytes "
                            f"(shape (60000, 28, 28)), file holds 1000")


def test_truncated_data_gzip(tmp_path):
    p = _write(tmp_path / "train-images-idx3-ubyte.gz",
               _header(0x08, (10, 28, 28)) + bytes(range(1, 251)) * 4, gz=True)
    with pytest.raises(IDXFormatError) as e:
        idx.read_images(p)
    assert str(e.value) == (f"{p}: truncated: header says 7840 data bytes "
                            f"(shape (10, 28, 28)), file holds 1000")


def test_truncated_gzip_beyond_deflate_bound(tmp_path):
    p = _write(tmp_path / "f.gz", _header(0x08, (60000, 28, 28)) + bytes(range(1, 251)) * 4, gz=True)
    size = p.stat().st_size
    with pytest.raises(IDXFormatError, match=rf"truncated: header says 47040000 data bytes "
                                             rf"\(shape \(60000, 28, 28\)\), more than a {size}-byte gzip"):
        idx.read_images(p)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_wide_type(tmp_path, gz):
    p = _write(tmp_path / "f", _header(0x0E, (3, 2)) + b"\1" * 47, gz)
    with pytest.raises(IDXFormatError, match="header says 48 data bytes .*file holds 47$"):
        idx.read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_trailing_bytes(tmp_path, gz):
    p = _write(tmp_path / "f", _header(0x08, (2, 3)) + b"\1" * 7, gz)
    with pytest.raises(IDXFormatError, match="trailing data: header says 6 data bytes"):
        idx.read_idx(p)


def test_trailing_bytes_raw_names_count(tmp_path):
    p = _write(tmp_path / "f", _header(0x0C, (2,)) + b"\1" * 11)
    with pytest.raises(IDXFormatError, match=r"header says 8 data bytes \(shape \(2,\)\), file holds 11"):
        idx.read_idx(p)


def test_garbage_after_gzip_stream(tmp_path):
    p = tmp_path / "f.gz"
    p.write_bytes(gzip.compress(_header(0x08, (3,)) + b"\1\2\3") + b"junk!!")
    with pytest.raises(IDXFormatError, match="corrupt gzip data"):
        idx.read_idx(p)


def test_corrupt_gzip_crc(tmp_path):
    blob = bytearray(gzip.compress(_header(0x08, (4,)) + b"\1\2\3\4"))
    blob[-8] ^= 0xFF  # CRC32 of the uncompressed data
    p = tmp_path / "f.gz"
    p.write_bytes(bytes(blob))
    with pytest.raises(IDXFormatError, match="corrupt gzip data"):
        idx.read_idx(p)


def test_truncated_gzip_stream(tmp_path):
    blob = gzip.compress(_header(0x08, (4, 100)) + bytes(range(1, 201)) * 2)
    p = tmp_path / "f.gz"
    p.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(IDXFormatError, match="corrupt gzip data|truncated"):
        idx.read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(2 ** 31, 2 ** 31, 2 ** 31), (2 ** 32 - 1, 2 ** 32 - 1)])
def test_absurd_sizes_fail_fast(tmp_path, gz, shape):
    payload = _header(0x08, shape)
    payload += b"\1" * (20 - len(payload))
    p = _write(tmp_path / "f", payload, gz)
    if not gz:
        assert p.stat().st_size == 20
    start = time.perf_counter()
    with pytest.raises(IDXFormatError, match=f"truncated: header says {np.prod(shape, dtype=object)} data bytes"):
        idx.read_idx(p)
    assert time.perf_counter() - start < 1.0


def test_gzip_claiming_more_than_deflate_can_hold_is_not_decompressed(tmp_path):
    # 64 MiB of zeros compress to ~64 KiB; a header claiming 1 TB is rejected
    # from the compressed size alone, before any decompression.
    p = tmp_path / "bomb.gz"
    p.write_bytes(gzip.compress(_header(0x08, (10 ** 6, 10 ** 6)) + bytes(64 << 20)))
    start = time.perf_counter()
    with pytest.raises(IDXFormatError, match="more than a .*-byte gzip file can hold"):
        idx.read_idx(p)
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize("gz", [False, True])
def test_empty_file(tmp_path, gz):
    p = _write(tmp_path / "f", b"", gz)
    with pytest.raises(IDXFormatError, match="too short for an IDX header: file holds 0 bytes"):
        idx.read_idx(p)


def test_two_byte_file(tmp_path):
    p = _write(tmp_path / "f", b"\0\0")
    with pytest.raises(IDXFormatError, match="too short for an IDX header: file holds 2 bytes"):
        idx.read_idx(p)


def test_only_gzip_magic(tmp_path):
    p = _write(tmp_path / "f", b"\x1f\x8b")
    with pytest.raises(IDXFormatError, match="corrupt gzip data"):
        idx.read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_header_shorter_than_declared(tmp_path, gz):
    p = _write(tmp_path / "f", bytes([0, 0, 8, 3]) + struct.pack(">II", 10, 28), gz)
    with pytest.raises(IDXFormatError, match="header shorter than declared: 3 dimensions need 12 bytes"
                                             " of sizes, file has 8"):
        idx.read_idx(p)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        idx.read_idx(tmp_path / "nope")


def test_write_rejects_unsupported(tmp_path):
    with pytest.raises(TypeError, match="uint16"):
        idx.write_idx(tmp_path / "f", np.zeros(3, np.uint16))
    with pytest.raises(TypeError):
        idx.write_idx(tmp_path / "f", np.zeros(3, bool))
    with pytest.raises(ValueError, match="1..4 dimensions, got 0"):
        idx.write_idx(tmp_path / "f", np.uint8(3))
    with pytest.raises(ValueError, match="got 5"):
        idx.write_idx(tmp_path / "f", np.zeros((1,) * 5, np.uint8))


def test_write_accepts_non_native_and_non_contiguous(tmp_path):
    a = np.arange(24, dtype=">f8").reshape(4, 6)[:, ::2]
    idx.write_idx(tmp_path / "f.gz", a)
    b = idx.read_idx(tmp_path / "f.gz")
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, a)
