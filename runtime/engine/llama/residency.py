"""Weights resident once: how a model file is loaded, and what of it stays
in memory.

llama.cpp memory-maps the file by default. Its CPU backend then copies most
of a Q4_0/Q4_K/IQ4_NL model into an anonymous buffer in an interleaved
layout (the "repack", which is what makes prompt processing fast); a GPU
build copies offloaded layers to the device. The file pages those copies
were read from stay mapped and resident: a 3B Q4_K_M model was in RAM twice
(1.28 GB repacked + 1.83 GB of file pages).

Measured on the 3B stand-in (scripts/bench, see the README), the choices:
- no mmap: the weights once (all anonymous), but loading reads the file into
  fresh memory, about 2 s slower with the file in the page cache, and none
  of it can be reclaimed or shared by another process;
- mmap, then release (what we do): llama.cpp loads as fast as ever, and the
  file pages of every tensor it copied are released right after the load
  (`madvise(MADV_DONTNEED)`: a clean file page is only dropped from this
  process; touched again it comes back from the page cache). Pages of
  tensors served in place come back on first use. The weights are resident
  once, and the in-place part stays reclaimable and shared.

Whether anything was copied is what llama.cpp reports while loading (its
buffer sizes, `engine.llama.buffers`), never a table of ours.

The file's filesystem decides against mmap: on a network or FUSE filesystem
a page fault goes over the wire, and a mapped file whose server goes away
kills the process with SIGBUS, so such files are read into memory instead.
`use_mmap` / `use_mlock` (component options) override the choice.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import llama_cpp

from runtime.engine.llama import pages
from runtime.engine.llama.buffers import Buffers, in_ram

logger = logging.getLogger(__name__)

# Filesystems where a mapped file is a liability (see the module docstring).
REMOTE_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "virtiofs",
    }
)


@dataclass(frozen=True)
class LoadMode:
    mmap: bool
    mlock: bool
    reason: str  # why, for the log and `GET /models`

    @property
    def llama_mode(self) -> int:
        modes = {
            (True, False): llama_cpp.LLAMA_LOAD_MODE_MMAP,
            (True, True): llama_cpp.LLAMA_LOAD_MODE_MMAP_MLOCK,
            (False, False): llama_cpp.LLAMA_LOAD_MODE_NONE,
            (False, True): llama_cpp.LLAMA_LOAD_MODE_MLOCK,
        }
        return int(modes[self.mmap, self.mlock])

    @property
    def name(self) -> str:
        return ("mmap" if self.mmap else "read") + ("+mlock" if self.mlock else "")


def filesystem_type(path: str, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding `path` ("ext4", "nfs4", "fuse.sshfs"),
    from `mountinfo` (default: /proc/self/mountinfo); None where that is missing."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as info:
                mountinfo = info.read()
        except OSError:
            return None
    lines = mountinfo.splitlines()
    real = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) < 5 or not after:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, after.split()[0]
    return best_type


def choose(path: str, use_mmap: bool | None, use_mlock: bool) -> LoadMode:
    """How to load the file at `path`; `use_mmap` None: our choice."""
    if use_mmap is not None:
        return LoadMode(use_mmap, use_mlock, "use_mmap set")
    if not llama_cpp.llama_supports_mmap():
        return LoadMode(False, use_mlock, "this llama.cpp cannot mmap")
    kind = filesystem_type(path)
    if kind is not None and (kind in REMOTE_FILESYSTEMS or kind.startswith("fuse")):
        return LoadMode(False, use_mlock, f"the file is on {kind}, read into memory")
    return LoadMode(True, use_mlock, "mmap, copied tensors' pages released")


def release_copied(path: str, mode: LoadMode, buffers: Buffers) -> int:
    """After a load: release the mapped file's pages when llama.cpp copied
    tensors out of it. Returns the bytes of mapping released (0: none)."""
    if not mode.mmap or mode.mlock or buffers.copied_weights == 0:
        return 0  # nothing copied, or locked in RAM on purpose
    released = 0
    for mapping in pages.file_mappings(path):
        if pages.release(mapping.start, mapping.end):
            released += mapping.size
    logger.debug("released %d bytes of %s's mapping (tensors copied)", released, path)
    return released


def release_cleared_kv(before: set[pages.Mapping], buffers: Buffers) -> int:
    """After a context is made: release the pages of its KV cache in RAM,
    which llama.cpp has just cleared to zero (a released page reads as zero,
    so nothing changes), so that only the cells sequences write become
    resident: KV memory follows the tokens held, up to the most each slot has
    held. `before`: the anonymous mappings before the context was made.

    llama.cpp does not say where the cache is. It is found as the run of
    resident pages, in memory mapped while the context was made, of the size
    llama.cpp logged for it (the compute buffer beside it is not resident
    yet), and released only if it holds nothing but zeros. No such run: the
    cache stays as it is. Returns the bytes released."""
    sizes = [size for name, size in buffers.kv.items() if in_ram(name)]
    if not sizes:
        return 0
    old = sorted((m.start, m.end) for m in before)
    released = 0
    for start, end in _new_ranges(old, pages.anonymous_mappings()):
        for run_start, run_end in pages.resident_runs(start, end):
            length = run_end - run_start
            if not any(abs(length - size) <= KV_SIZE_SLACK for size in sizes):
                continue
            # The allocator's header shares the first page with the cache.
            run_start += pages.PAGE
            if not pages.all_zero(run_start, run_end):
                continue
            # Under transparent huge pages "always", the first write to a
            # released range would bring back 2 MB at a time, not a page.
            pages.advise(run_start, run_end, pages.MADV_NOHUGEPAGE)
            if pages.release(run_start, run_end):
                released += run_end - run_start
    if not released:
        logger.debug("KV cache (%s bytes) not found: it stays resident", sizes)
    return released


# The logged size is exact to 10 KB; the allocator's header page and the
# rounding to pages take up to two more pages.
KV_SIZE_SLACK = 16 * 1024


def _new_ranges(old: list[tuple[int, int]], now: set[pages.Mapping]) -> list[tuple[int, int]]:
    """The address ranges mapped now that no old mapping covered (the kernel
    merges a new mapping into an adjacent old one: only the new part counts)."""
    ranges = []
    for mapping in sorted(now, key=lambda m: m.start):
        cursor = mapping.start
        for start, end in old:
            if end <= cursor or start >= mapping.end:
                continue
            if start > cursor:
                ranges.append((cursor, start))
            cursor = max(cursor, end)
        if cursor < mapping.end:
            ranges.append((cursor, mapping.end))
    return ranges
