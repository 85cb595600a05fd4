"""The machine the numbers come from, and whether anything else was using it.

On a 2-core machine a neighbour at 100% of one core does not cost a few
percent: llama.cpp's worker threads wait for each other at every graph node,
so a descheduled thread can make a decode step ten times slower. The benchmark
therefore waits for an idle machine before each system, measures how much CPU
other programs took while it ran, and says so in the table.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from importlib import metadata
from pathlib import Path
from typing import Any


def describe(model: str, n_threads: int) -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "llama_cpp_python": version("llama_cpp_python"),
        "model": model,
        "model_bytes": Path(model).stat().st_size,
        "n_threads": n_threads,
        "load_average_at_start": os.getloadavg(),
    }


def busy_cpu_s() -> float | None:
    """CPU seconds every process of the machine has used since boot (None
    without /proc)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:8]
        user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields)
    except (OSError, IndexError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its finished children (workers, server)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class LoadMeter:
    """CPU that other programs used between its creation and `read()`."""

    def __init__(self) -> None:
        self._busy, self._own, self._at = busy_cpu_s(), own_cpu_s(), time.monotonic()

    def read(self) -> dict[str, float | None]:
        busy = busy_cpu_s()
        wall = time.monotonic() - self._at
        if busy is None or self._busy is None or wall <= 0:
            return {"other_cpu_s": None, "share": None}
        other = max(0.0, (busy - self._busy) - (own_cpu_s() - self._own))
        return {"other_cpu_s": other, "share": other / (wall * (os.cpu_count() or 1))}


def wait_for_idle(timeout_s: float, threshold: float = 0.10, window_s: float = 2.0) -> float:
    """Wait until other programs use less than `threshold` of the CPU over
    `window_s`, at most `timeout_s`; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        meter = LoadMeter()
        time.sleep(window_s)
        share = meter.read()["share"]
        if share is None or share < threshold:
            break
    return time.monotonic() - started
