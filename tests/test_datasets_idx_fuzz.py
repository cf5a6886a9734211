"""Fuzzing the IDX reader (tensornet.datasets.idx) with hypothesis.

Every file, whatever its bytes, must either load as exactly what its header declares (shape,
dtype, the data bytes that follow, and the magic read_images / read_labels require) or raise
IDXFormatError (a ValueError) naming the file: no other exception, and a peak of traced memory
(tracemalloc, NumPy's buffers included) within a few times what the file really holds (its
size, or for gzip what its deflate streams really inflate to) plus the reader's 1 MiB read chunk
and 512 KiB, whatever sizes the header claims.

Files: valid IDX files (images, labels, any type and 1..4 dimensions; plain or gzip) with their
header fields set to chosen or huge values (10**9 images...) and then byte-level mutations
(bit flips, overwritten, inserted and deleted bytes, truncation at any point); and random bytes,
some behind an IDX or gzip prefix. The runs are derandomized (reproducible) and keep no example
database. ``python bench/fuzz_loaders.py --examples N`` runs the same properties longer.
"""
from __future__ import annotations

import collections
import gzip
import struct
import tracemalloc
import zlib

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import byte_mutations, fuzz_settings, report_and_check, summary

from tensornet.datasets import idx
from tensornet.datasets.idx import IDXFormatError

MUTATED_EXAMPLES = 1500
RANDOM_EXAMPLES = 600
_SLACK = idx._CHUNK + (512 << 10)  # the reader's read chunk (gzip preallocates it); zlib state
READERS = {"read_idx": (idx.read_idx, None), "read_images": (idx.read_images, idx.IMAGES_MAGIC),
           "read_labels": (idx.read_labels, idx.LABELS_MAGIC)}
HUGE = [0, 1, 2, 255, 256, 60000, 10**9, 2**31 - 1, 2**31, 2**32 - 1]

# ------------------------------------------------------------------ strategies
@st.composite
def valid_payloads(draw):
    """(uncompressed IDX bytes, reader name): images, labels or any type / 1..4 dimensions."""
    kind = draw(st.sampled_from(["images", "labels", "any"]))
    if kind == "images":
        code, shape = 0x08, tuple(draw(st.lists(st.integers(0, 6), min_size=3, max_size=3)))
    elif kind == "labels":
        code, shape = 0x08, (draw(st.integers(0, 40)),)
    else:
        code = draw(st.sampled_from(sorted(idx.DTYPES)))
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=4)))
    size = idx.DTYPES[code].itemsize * int(np.prod(shape))
    data = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, size, dtype=np.uint8)
    reader = draw(st.sampled_from(["read_idx", {"images": "read_images", "labels": "read_labels"}.get(kind,
                                                                                                    "read_idx")]))
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", n) for n in shape) + data.tobytes(), reader


@st.composite
def header_edits(draw, payload):
    """``payload`` with 0..2 header fields (type code, ndim, a size) set to chosen or huge values."""
    out = bytearray(payload)
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from(["code", "ndim", "size"]))
        if field == "code":
            out[2] = draw(st.one_of(st.sampled_from(sorted(idx.DTYPES)), st.integers(0, 255)))
        elif field == "ndim":
            out[3] = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 255]))
        else:
            at = 4 + 4 * draw(st.integers(0, 3))
            value = draw(st.one_of(st.sampled_from(HUGE), st.integers(0, 2**32 - 1)))
            out[at:at + 4] = struct.pack(">I", value)
    return bytes(out)



@st.composite
def mutated_files(draw):
    """(file bytes, reader name): a valid payload, header edits, maybe gzip, byte mutations."""
    payload, reader = draw(valid_payloads())
    payload = draw(header_edits(payload))
    if draw(st.booleans()):
        payload = gzip.compress(payload, compresslevel=draw(st.integers(0, 9)), mtime=0)
    return draw(byte_mutations(payload, min_ops=0, max_ops=4)), reader


@st.composite
def random_files(draw):
    """(file bytes, reader name): random bytes, maybe behind an IDX or gzip prefix, maybe gzipped."""
    prefix = draw(st.sampled_from([b"", b"\x00\x00", b"\x00\x00\x08\x03", b"\x00\x00\x08\x01",
                                   b"\x00\x00\x0e\x04", b"\x1f\x8b", b"\x1f\x8b\x08\x00"]))
    data = prefix + draw(st.binary(max_size=300))
    if draw(st.integers(0, 4)) == 0:
        data = gzip.compress(data, mtime=0)
    return data, draw(st.sampled_from(sorted(READERS)))


# ------------------------------------------------------------------ the property
def inflated_size(data, cap=1 << 28):
    """Bytes the gzip members at the start of ``data`` really inflate to (0 for a plain file)."""
    total, rest = 0, data
    while rest[:2] == b"\x1f\x8b" and total <= cap:
        stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            total += len(stream.decompress(rest, cap))
            while stream.unconsumed_tail and total <= cap:
                total += len(stream.decompress(stream.unconsumed_tail, cap))
        except zlib.error:
            break
        if not stream.eof:
            break
        rest = stream.unused_data
    return total


def expected_array(data, magic):
    """What a correct reader returns for ``data`` (which it accepted): parsed independently."""
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    assert raw[:2] == b"\0\0" and raw[2] in idx.DTYPES and 1 <= raw[3] <= idx.MAX_NDIM
    assert magic is None or int.from_bytes(raw[:4], "big") == magic
    ndim, dtype = raw[3], idx.DTYPES[raw[2]]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    assert len(body) == dtype.itemsize * int(np.prod(shape, dtype=object))
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def check_file(path, data, reader, counts):
    """One file: loads exactly what its header declares, or IDXFormatError naming it; memory bounded."""
    path.write_bytes(data)
    read, magic = READERS[reader]
    counts["files"] += 1
    tracemalloc.start()
    try:
        array = read(path)
    except IDXFormatError as exc:
        counts["rejected"] += 1
        assert str(path) in str(exc), f"the error does not name the file: {exc}"
        array = None
    except Exception:
        counts["other"] += 1
        raise
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    bound = 4 * max(len(data), inflated_size(data)) + _SLACK
    assert peak <= bound, f"{reader} of a {len(data)}-byte file peaked at {peak} bytes (bound {bound})"
    if array is not None:
        counts["loaded"] += 1
        expected = expected_array(data, magic)
        assert array.dtype == expected.dtype and array.dtype.isnative and array.shape == expected.shape
        assert array.tobytes() == expected.tobytes()





def run(name, strategy, directory, examples):
    """Check ``examples`` files drawn from ``strategy``; print and return the counts."""
    counts = collections.Counter(files=0, loaded=0, rejected=0, other=0)
    path = directory / f"{name}.idx"

    @fuzz_settings(examples)
    @given(strategy)
    def check(case):
        check_file(path, *case, counts)

    try:
        check()
    finally:
        print(summary(name, counts))
    return counts


def run_mutated(directory, examples=MUTATED_EXAMPLES):
    return run("idx mutated", mutated_files(), directory, examples)


def run_random(directory, examples=RANDOM_EXAMPLES):
    return run("idx random", random_files(), directory, examples)


# ------------------------------------------------------------------ tests
def test_mutated_idx_files_load_exactly_or_raise_value_error(tmp_path, report_counts):
    counts = run_mutated(tmp_path)
    report_and_check("idx mutated", counts, report_counts, some_loaded=True)


def test_random_bytes_raise_value_error(tmp_path, report_counts):
    counts = run_random(tmp_path)
    report_and_check("idx random", counts, report_counts)


def test_huge_declared_sizes_rejected_before_allocation(tmp_path):
    """10**9 images (raw and gzip), a labels header claiming 2**32 - 1 entries, ..., and zero images
    of a size NumPy cannot index (found by bench/fuzz_loaders.py: it raised a bare ValueError)."""
    counts = collections.Counter(files=0, loaded=0, rejected=0, other=0)
    for shape, reader in [((10**9, 28, 28), "read_images"), ((2**32 - 1,), "read_labels"),
                          ((60000, 60000, 60000), "read_images"), ((2**32 - 1,) * 4, "read_idx"),
                          ((0, 2**32 - 1, 2**32 - 1), "read_images")]:
        payload = bytes([0, 0, 8, len(shape)]) + b"".join(struct.pack(">I", n) for n in shape) + bytes(784)
        for data in (payload, gzip.compress(payload, mtime=0)):
            check_file(tmp_path / "huge.idx", data, reader, counts)
    assert counts["rejected"] == counts["files"] == 10, summary("idx huge", counts)
