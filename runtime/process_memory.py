"""A process's resident memory as Linux accounts it (/proc/<pid>/status), for
`GET {base_path}/models`, the Web UI and the benchmarks.

The split matters for a model server: anonymous pages (heap, weights
llama.cpp copied or repacked, the KV cache, compute buffers) can only be
freed by swapping, while file-backed pages (the model file mapped and served
in place, the libraries) are a cache the kernel may drop under pressure and
read again from disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessMemory:
    """Bytes."""

    rss: int  # VmRSS: every resident page
    rss_anon: int  # RssAnon: anonymous pages
    rss_file: int  # RssFile: pages of mapped files
    peak_rss: int  # VmHWM: the highest RSS the process has had


def process_memory(pid: int | None = None) -> ProcessMemory | None:
    """A process's resident memory (this one by default); None where there is
    no /proc (macOS) or the process is gone."""
    try:
        with open(f"/proc/{pid if pid is not None else os.getpid()}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except OSError:
        return None

    def kilobytes(name: str) -> int:
        value = fields.get(name, "0 kB").split()
        return int(value[0]) * 1024 if value else 0

    return ProcessMemory(
        rss=kilobytes("VmRSS"),
        rss_anon=kilobytes("RssAnon"),
        rss_file=kilobytes("RssFile"),
        peak_rss=kilobytes("VmHWM"),
    )
