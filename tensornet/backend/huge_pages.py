"""Zeroed host buffers on transparent huge pages, for the arrays kept from step to step: a
model's flat parameter and gradient buffers and optimizer state, its layers' workspaces and the
backend's scratch buffers.

Why: a training step reads and writes every parameter, its gradient and its optimizer state
(784-512-512-10 with SGD and momentum: 3 x 2.7 MB), and every workspace. On 4 KiB pages that is
thousands of pages a step, and on a virtual machine each TLB miss walks both the guest's and
the host's page tables; on 2 MiB pages the same buffers take a few TLB entries. NumPy itself
advises huge pages only for arrays from 4 MiB, wherever malloc places them, so only their whole
2 MiB-aligned stretches get them. Measured through ``fit`` on the 2-core machine, interleaved in
one process against NumPy's allocations: ``python bench/huge_pages.py`` (bench/README.md, "Huge
pages for the lasting buffers").

How: an anonymous ``mmap`` at least 2 MiB longer than the buffer; the array starts at its first
2 MiB boundary, and the huge pages it touches are marked ``MADV_HUGEPAGE`` (Linux honours it
when ``/sys/kernel/mm/transparent_hugepage/enabled`` is ``always`` or ``madvise``). The last one
is whole, so a buffer takes less than 2 MiB more memory than its own size. Anonymous memory is
zero, so nothing is written until the buffer is used. Elsewhere -- no ``MADV_HUGEPAGE`` (macOS,
Windows), buffers under 2 MiB, or ``TENSORNET_HUGE_PAGES=0`` -- :func:`zeros` answers None and
the backend allocates as usual.
"""
from __future__ import annotations

import math
import mmap
import os

import numpy

#: The huge page size the buffers are aligned to (x86-64 and arm64 with 4 KiB base pages).
HUGE_PAGE = 1 << 21


def enabled() -> bool:
    """Whether :func:`zeros` uses huge pages: the platform has ``MADV_HUGEPAGE`` and
    ``TENSORNET_HUGE_PAGES`` is not ``0`` (read on every call, so a test can switch it)."""
    return hasattr(mmap, "MADV_HUGEPAGE") and os.environ.get("TENSORNET_HUGE_PAGES", "1") != "0"


def zeros(shape, dtype):
    """A zeroed C-contiguous NumPy array of ``shape`` (a tuple or an int) and ``dtype``,
    2 MiB-aligned on memory advised as huge pages, when it spans at least one huge page and
    :func:`enabled`; else None. The array holds its mapping (through ``.base``) for as long as it
    lives."""
    shape = (int(shape),) if numpy.ndim(shape) == 0 else tuple(int(n) for n in shape)
    dtype = numpy.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
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
    return raw[start:start + nbytes].view(dtype).reshape(shape)
