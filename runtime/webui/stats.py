"""The line under an answer: finish reason, tokens, time to first token, speed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runtime.engine.types import GenerationResult, Usage


@dataclass(frozen=True)
class RunStats:
    finish_reason: str | None
    usage: Usage = field(default_factory=Usage)
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    detail: str | None = None  # e.g. why max_output_length was clamped


def run_stats(results: Sequence[GenerationResult], finish_reason: str | None) -> RunStats:
    """Stats of a run's generations (several for repeats). The first token is
    the earliest one; the speed is over all completion tokens together."""
    if not results:
        return RunStats(finish_reason)
    usage = Usage.of(r.usage for r in results)
    started = [r.timings.ttft_s for r in results if r.usage.completion_tokens > 0]
    timed = [r for r in results if r.timings.tokens_per_s > 0 and r.usage.completion_tokens > 0]
    decode_s = sum(r.usage.completion_tokens / r.timings.tokens_per_s for r in timed)
    speed = sum(r.usage.completion_tokens for r in timed) / decode_s if decode_s > 0 else None
    details = [r.detail for r in results if r.detail]
    return RunStats(
        finish_reason=finish_reason,
        usage=usage,
        ttft_s=min(started) if started else None,
        tokens_per_s=speed,
        detail=details[0] if details else None,
    )


def format_stats(stats: RunStats) -> str:
    parts = [f"finish: {stats.finish_reason or 'unknown'}"]
    usage = stats.usage
    if usage.total_tokens:
        cached = f", {usage.cached_tokens} cached" if usage.cached_tokens else ""
        thought = f" ({usage.reasoning_tokens} reasoning)" if usage.reasoning_tokens else ""
        parts.append(
            f"{usage.prompt_tokens} prompt{cached} + {usage.completion_tokens} completion "
            f"tokens{thought}"
        )
    if stats.ttft_s is not None:
        parts.append(f"first token after {_duration(stats.ttft_s)}")
    if stats.tokens_per_s is not None:
        parts.append(f"{stats.tokens_per_s:.1f} tokens/s")
    line = " · ".join(parts)
    return f"{line} ({stats.detail})" if stats.detail else line


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
