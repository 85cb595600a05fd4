"""What one measured run is, and the numbers the table shows.

Definitions (printed with the table):
- total decode tokens/s: every completion token of every client, divided by the
  wall time from the first submit to the last finish (prefill included);
- TTFT: per request, from its submit to its first token (first text for the
  engines and the server, first sampled token for the raw ceiling);
- RSS: the resident set of the process that runs the model, after the runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.process_memory import ProcessMemory, process_memory


@dataclass
class RunRecord:
    """One round: `clients` concurrent requests, started together."""

    clients: int
    wall_s: float
    ttft_s: list[float]
    completion_tokens: list[int]
    finish_reasons: list[str] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return sum(self.completion_tokens)

    @property
    def tokens_per_s(self) -> float:
        return self.total_tokens / self.wall_s if self.wall_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "total_tokens": self.total_tokens,
            "tokens_per_s": self.tokens_per_s,
        }


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return percentile(values, 50)


def summarize(records: list[RunRecord]) -> dict[str, Any]:
    """One table row from the repetitions of one (system, clients) cell: the
    median of the repetitions' tokens/s, TTFT percentiles over every request."""
    ttfts = [t for record in records for t in record.ttft_s]
    tokens = [n for record in records for n in record.completion_tokens]
    return {
        "clients": records[0].clients,
        "repetitions": len(records),
        "tokens_per_s": median([record.tokens_per_s for record in records]),
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p95_s": percentile(ttfts, 95),
        "completion_tokens_min": min(tokens),
        "completion_tokens_max": max(tokens),
        "runs": [record.to_json() for record in records],
    }


def memory(pid: int | None = None) -> dict[str, int]:
    """A process's resident memory (this one by default): all of it, split
    into anonymous (heap, repacked weights, KV cache) and file-backed (mapped
    model file and libraries) pages, and its peak; zeros without /proc."""
    resident = process_memory(pid) or ProcessMemory(0, 0, 0, 0)
    return {
        "rss_bytes": resident.rss,
        "rss_anon_bytes": resident.rss_anon,
        "rss_file_bytes": resident.rss_file,
        "peak_rss_bytes": resident.peak_rss,
    }


def rss_bytes(pid: int | None = None) -> int:
    """VmRSS of a process (this one by default)."""
    return memory(pid)["rss_bytes"]
