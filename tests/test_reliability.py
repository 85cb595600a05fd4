"""scripts/load and scripts/soak, small: the same code against a real
`model-compose up` on the embedded model, with the same checks. Timings are
reported, never asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.reliability import checks, report
from scripts.reliability.clients import V1, Outcome
from scripts.reliability.load import LoadSettings, run_load
from scripts.reliability.prompts import soak_prompts
from scripts.reliability.reference import key
from scripts.reliability.soak import SoakSettings, run_soak
from scripts.reliability.ties import TIE_LOGITS, Referee

# Greedy answers of the embedded model to PROMPT alone, and under load after
# a prefix-cache hit: the two best tokens after "nostalgic and nostalgic" are
# within a few hundredths of a logit, so llama.cpp's batch-size rounding
# decides between them.
PROMPT = (
    "Notes 2: signal station lantern summer river winter.\n\n"
    "Summarize the notes above in one sentence."
)
ALONE = "The notes are a nostalgic and nostalgic tribute to the signal station lantern in"
UNDER_LOAD = "The notes are a nostalgic and nostalgic blend of summer and winter."


def failed(results: dict[str, Any]) -> list[str]:
    return [f"{c['name']}: {c['detail']}" for c in results["checks"] if not c["ok"]]


def test_a_small_load_run_with_a_short_queue_passes_every_check(
    embedded_model_path: Path, tmp_path: Path
) -> None:
    # 16 clients for 4 slots and 4 waiting places: half are refused with 503
    # at first and must get in by retrying after Retry-After.
    settings = LoadSettings(
        model=str(embedded_model_path), clients=16, requests=32, max_tokens=16, max_queue=4
    )
    results = run_load(settings)
    assert results["passed"], failed(results)
    figures = results["figures"]
    assert figures["answered"] == 32
    assert figures["by_endpoint"] == {"v1": 16, "workflow": 16}
    assert figures["refusals"] > 0
    assert figures["latency_s"]["p95"] >= figures["latency_s"]["p50"] > 0
    assert results["status_after"]["models"][0]["busy"] == 0
    written = report.write(results, tmp_path, "load")
    assert [path.name for path in written] == ["load.json", "load.md"]
    assert "| latency p50 / p95 / max (s) |" in written[1].read_text()


@pytest.mark.soak
def test_a_100_request_soak_with_cancellations_leaves_the_server_idle(
    embedded_model_path: Path,
) -> None:
    # Prompts up to 150 words (about 200 tokens) and 8-token answers keep it
    # short for CI; scripts/soak runs 1,000 requests up to 300 words.
    settings = SoakSettings(
        model=str(embedded_model_path),
        requests=100,
        warmup=10,
        prompts=6,
        max_words=150,
        max_tokens=8,
    )
    results = run_soak(settings)
    assert results["passed"], failed(results)
    figures = results["figures"]
    assert figures["requests"] == 100
    assert sum(figures["cancelled"].values()) >= 10
    assert figures["answered"] + sum(figures["cancelled"].values()) == 100
    assert figures["problems"] == 0


def outcome(text: str, finish: str = "length", tokens: int = 16, **kwargs: Any) -> Outcome:
    return Outcome(
        V1, 0, 16, text=text, finish_reason=finish, completion_tokens=tokens, status=200, **kwargs
    )


@pytest.fixture(scope="module")
def referee(embedded_model_path: Path) -> Any:
    judge = Referee(str(embedded_model_path), 512, [PROMPT])
    yield judge
    judge.close()


def test_an_answer_that_parts_from_its_reference_at_a_near_tie_is_accepted(
    referee: Referee,
) -> None:
    gap = referee.divergence(0, UNDER_LOAD, True, ALONE, False).gap
    assert 0 < gap < TIE_LOGITS
    references = {key(V1, 0): outcome(ALONE)}
    check = checks.answers_match([outcome(UNDER_LOAD, "stop", 14)], references, referee)
    assert check.ok, check.detail
    assert "1 parted from it at a near-tie" in check.detail


def test_a_wrong_or_cut_answer_is_caught(referee: Referee) -> None:
    references = {key(V1, 0): outcome(ALONE)}
    for wrong in (
        outcome("The capital of France is Paris.", "stop", 8),  # another prompt's answer
        outcome("The notes are a nostalgic and wonderful blend of summer.", "stop", 12),
        outcome("The notes are a", "length", 5),  # cut short
    ):
        check = checks.answers_match([wrong], references, referee)
        assert not check.ok, wrong.text
    cancelled = outcome("The notes are a nostalgic and wonderful", cancel="disconnect")
    assert not checks.cancelled_are_prefixes([cancelled], references, referee).ok
    cut = outcome("The notes are a nostalgic and nostalgic blend", cancel="disconnect")
    assert checks.cancelled_are_prefixes([cut], references, referee).ok


def test_soak_prompts_run_from_one_word_to_a_few_hundred() -> None:
    prompts = soak_prompts(16, seed=7)
    assert prompts == soak_prompts(16, seed=7)
    lengths = sorted(len(p.split()) for p in prompts)
    assert lengths[0] == 1 and lengths[-1] > 300
    assert max(len(p.split()) for p in soak_prompts(6, seed=7, max_words=150)) < 200
