"""Shared pieces of the loader fuzz tests (tests/test_*_fuzz.py): hypothesis settings, byte-level
mutations of a file, the property runner, and the counts line each property reports."""
from __future__ import annotations

import collections
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):  # hypothesis' caches go outside the repository
    set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "tensornet-hypothesis"))


def fuzz_settings(examples):
    """Reproducible (derandomized) runs of ``examples`` examples, no example database, no deadline."""
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def byte_mutations(draw, data, min_ops=1, max_ops=3, within=None):
    """``data`` after min_ops..max_ops of: bit flip, overwritten byte, inserted bytes, deleted
    run, truncation; positions anywhere, or below ``within``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(min_ops, max_ops))):
        op = draw(st.sampled_from(["flip", "flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, 2**20)) % (min(len(out), within or len(out)) + 1)
        if op == "flip" and at < len(out):
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(out):
            out[at] = draw(st.integers(0, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del out[at:at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del out[at:]
    return bytes(out)


def summary(name, counts):
    """The counts line of a property: files tried, loaded, rejected with ValueError, other."""
    return (f"fuzz {name}: {counts['files']} files, {counts['loaded']} loaded, {counts['rejected']} rejected "
            f"with ValueError, {counts['other']} other")


def report_and_check(name, counts, report_counts, some_loaded=False):
    """Report a property's counts line (``summary``) and assert what every loader fuzz property
    holds: nothing but ValueError was raised, some cases were rejected and, with
    ``some_loaded``, some loaded."""
    line = summary(name, counts)
    report_counts(line)
    assert counts["other"] == 0 and counts["rejected"] > 0 and (counts["loaded"] > 0 or not some_loaded), line


def run(name, strategy, check, examples):
    """Run ``check(case, counts)`` on ``examples`` cases drawn from ``strategy``; print and return
    the counts (``check`` adds to ``files``, ``loaded``, ``rejected`` and ``other``)."""
    counts = collections.Counter(files=0, loaded=0, rejected=0, other=0)

    @fuzz_settings(examples)
    @given(strategy)
    def property_(case):
        check(case, counts)

    try:
        property_()
    finally:
        print(summary(name, counts))
    return counts


def write_bytes(path, data):
    """A byte-string case, written as it is; returns the bytes."""
    path.write_bytes(data)
    return data


def write_archive(path, case):
    """A ``(header, arrays)`` case, written as an archive (valid checksum); returns its bytes."""
    from tensornet.io import archive

    archive.write_archive(path, *case)
    return path.read_bytes()


def run_written(name, strategy, path, write, verify, examples):
    """:func:`run` over cases from ``strategy``, each written to ``path`` by ``write(path, case)``
    (:func:`write_bytes`, :func:`write_archive`) and checked by ``verify(path, data, counts, case)``."""
    def check(case, counts):
        verify(path, write(path, case), counts, case)

    return run(name, strategy, check, examples)

