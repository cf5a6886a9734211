"""Zeroed host buffers on transparent huge pages, for the arrays a model keeps for its whole
life: the flat parameter and gradient buffers and the optimizer's state.

Why: a training step reads and writes every parameter, its gradient and its optimizer state
(784-512-512-10: 3 x 2.7 MB). On 4 KiB pages that is some 2,000 pages a step, and on a virtual
machine each TLB miss walks two levels of page tables. On 2 MiB pages the same buffers take
six TLB entries. Measured through ``fit`` on the 2-core machine, interleaved in one process,
the SGD (Nesterov) step of 784-512-512-10 at batch 128 takes about 5 % less time
(``python bench/huge_pages.py``; bench/README.md, "Huge pages for the flat buffers").

How: an anonymous ``mmap`` 2 MiB longer than the buffer, marked ``MADV_HUGEPAGE`` (Linux honours
it when ``/sys/kernel/mm/transparent_hugepage/enabled`` is ``always`` or ``madvise``), and the
array starts at its first 2 MiB boundary. Anonymous memory is zero, so nothing is written until
the buffer is used. Elsewhere -- no ``MADV_HUGEPAGE`` (macOS, Windows), buffers under 2 MiB,
or ``TENSORNET_HUGE_PAGES=0`` -- :func:`zeros` answers None and the backend allocates as usual.
"""
from __future__ import annotations

import mmap
import os

import numpy

#: The huge page size the buffers are aligned to (x86-64 and arm64 with 4 KiB base pages).
HUGE_PAGE = 1 << 21


def enabled() -> bool:
    """Whether :func:`zeros` uses huge pages: the platform has ``MADV_HUGEPAGE`` and
    ``TENSORNET_HUGE_PAGES`` is not ``0`` (read on every call, so a test can switch it)."""
    return hasattr(mmap, "MADV_HUGEPAGE") and os.environ.get("TENSORNET_HUGE_PAGES", "1") != "0"


def zeros(size, dtype):
    """A zeroed 1-d NumPy array of ``size`` elements of ``dtype``, 2 MiB-aligned on memory
    advised as huge pages, when it spans at least one huge page and :func:`enabled`; else None.
    The array holds its mapping (through ``.base``) for as long as it lives."""
    dtype = numpy.dtype(dtype)
    nbytes = int(size) * dtype.itemsize
    if nbytes < HUGE_PAGE or not enabled():
        return None
    span = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    try:
        region = mmap.mmap(-1, span + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, ValueError):  # no address space for it: the ordinary allocation
        return None
    raw = numpy.frombuffer(region, numpy.uint8)
    start = -raw.ctypes.data % HUGE_PAGE  # a multiple of the base page: the mapping starts on one
    try:
        region.madvise(mmap.MADV_HUGEPAGE, start, span)
    except OSError:  # transparent huge pages off in this kernel: the aligned buffer still works
        pass
    return raw[start:start + nbytes].view(dtype)
