"""Giving memory back to the system: pages of this process that hold nothing
it needs, found in `/proc/self/maps` and released with `madvise`.

Two uses (see `engine.llama.residency`):
- the pages of a memory-mapped model file whose tensors llama.cpp copied
  elsewhere (repacked for the CPU, uploaded to a GPU): read once, never used
  again, yet resident until the kernel needs the memory. Releasing a clean
  file-backed page loses nothing: touched again, it comes back from the page
  cache (or the file).
- the pages of a KV cache that llama.cpp has just cleared to zero: a
  released anonymous page reads as zero, so the cache is unchanged, and only
  the cells a sequence writes become resident again.

Linux only (`/proc`, `madvise`); elsewhere every function finds nothing and
releases nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import mmap
import os
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

PAGE = mmap.PAGESIZE
MADV_DONTNEED = 4
MADV_NOHUGEPAGE = 15
ZERO_SCAN_PAGES = 16384  # 64 MB at a time


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    path: str  # "" for anonymous memory
    perms: str = "rw-p"  # as /proc/self/maps writes them

    @property
    def size(self) -> int:
        return self.end - self.start


def mappings() -> list[Mapping]:
    """This process's memory mappings (empty where /proc is missing)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split(maxsplit=5)
        start, end = (int(part, 16) for part in fields[0].split("-"))
        found.append(Mapping(start, end, fields[5] if len(fields) == 6 else "", fields[1]))
    return found


def file_mappings(path: str) -> list[Mapping]:
    """The mappings of the file at `path`."""
    real = os.path.realpath(path)
    return [m for m in mappings() if m.path == real]


def anonymous_mappings() -> set[Mapping]:
    """Private anonymous memory this process can read and write (not guard
    pages, not shared memory)."""
    return {m for m in mappings() if not m.path and m.perms == "rw-p"}


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.madvise.restype = ctypes.c_int
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte))
    libc.mincore.restype = ctypes.c_int
    return libc


def advise(start: int, end: int, advice: int) -> bool:
    """`madvise` on the whole pages inside [start, end); False if it failed."""
    first = -(-start // PAGE) * PAGE
    last = end // PAGE * PAGE
    libc = _libc()
    if libc is None or last <= first:
        return False
    if libc.madvise(first, last - first, advice) != 0:
        logger.debug(
            "madvise(%#x, %d, %d) failed: errno %d", first, last - first, advice, ctypes.get_errno()
        )
        return False
    return True


def resident_runs(start: int, end: int) -> list[tuple[int, int]]:
    """The runs of resident pages in [start, end) (page-aligned), as
    (start, end) address pairs. Untouched anonymous pages are not resident:
    `mincore` tells them apart from pages a program has written, zeros
    included."""
    libc = _libc()
    count = (end - start) // PAGE
    if libc is None or count <= 0:
        return []
    vector = (ctypes.c_ubyte * count)()
    if libc.mincore(start, count * PAGE, vector) != 0:
        return []  # not all mapped any more
    resident = np.frombuffer(vector, dtype=np.int8) & 1
    edges = np.flatnonzero(np.diff(np.concatenate(([0], resident, [0]))))
    pairs = zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True)
    return [(start + a * PAGE, start + b * PAGE) for a, b in pairs]


def all_zero(start: int, end: int) -> bool:
    """Whether the memory in [start, end) holds only zero bytes. The range
    must stay mapped meanwhile (read in place, 64 MB at a time)."""
    words = (end - start) // 8
    memory = np.ctypeslib.as_array((ctypes.c_uint64 * words).from_address(start))
    step = ZERO_SCAN_PAGES * PAGE // 8
    return not any(memory[first : first + step].any() for first in range(0, words, step))


def release(start: int, end: int) -> bool:
    """Drop the whole pages inside [start, end) from this process's memory."""
    return advise(start, end, MADV_DONTNEED)
