"""The stats line under an answer."""

from __future__ import annotations

from runtime.engine.types import FinishReason, GenerationResult, Timings, Usage
from runtime.webui.stats import RunStats, format_stats, run_stats


def result(completion: int, ttft: float, speed: float, detail: str | None = None):
    return GenerationResult(
        "x", FinishReason.STOP, Usage(10, 4, completion), Timings(ttft, 1.0, speed), detail
    )


def test_one_generation_reads_as_one_line() -> None:
    stats = run_stats([result(20, 0.25, 80.0)], "stop")
    assert format_stats(stats) == (
        "finish: stop · 10 prompt, 4 cached + 20 completion tokens"
        " · first token after 250 ms · 80.0 tokens/s"
    )


def test_several_generations_add_up_and_the_first_token_is_the_earliest() -> None:
    stats = run_stats([result(10, 1.5, 10.0), result(30, 2.0, 30.0)], "length")
    assert stats.usage == Usage(20, 8, 40)
    assert stats.ttft_s == 1.5
    assert stats.tokens_per_s == 40 / (1 + 1)  # 40 tokens over 2 s of decoding
    assert "first token after 1.50 s" in format_stats(stats)


def test_a_run_without_generations_still_says_how_it_ended() -> None:
    assert format_stats(run_stats([], "cancelled")) == "finish: cancelled"
    assert format_stats(RunStats(None)) == "finish: unknown"


def test_why_an_answer_was_cut_short_is_said() -> None:
    stats = run_stats([result(5, 0.1, 50.0, "max_output_length clamped")], "length")
    assert format_stats(stats).endswith("(max_output_length clamped)")


def test_reasoning_tokens_are_said_apart() -> None:
    thought = GenerationResult(
        "x", FinishReason.STOP, Usage(10, 0, 20, 12), Timings(0.1, 1.0, 20.0)
    )
    assert "10 prompt + 20 completion tokens (12 reasoning)" in format_stats(
        run_stats([thought], "stop")
    )
