"""A sequence's own rules, without a model: text assembly, stops, budgets,
cancellation, and what reaches the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from runtime.engine.budget import TokenBudget, token_budget
from runtime.engine.sequence import Sequence
from runtime.engine.types import Delta, FinishReason, GenerationRequest, GenerationResult

VOCAB = {0: b"Hello", 1: b" wor", 2: b"ld", 3: b"!", 4: "é".encode()[:1], 5: "é".encode()[1:]}
EOG = 99


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def make_seq(
    loop: asyncio.AbstractEventLoop,
    budget: int | TokenBudget = 10,
    stops: tuple[str, ...] = (),
    prompt_tokens: int = 5,
) -> Sequence:
    seq = Sequence(GenerationRequest(prompt="x", stop=stops), loop)
    seq.prepare(
        [1] * prompt_tokens,
        budget if isinstance(budget, TokenBudget) else TokenBudget(budget),
        token_bytes=lambda t: VOCAB.get(t, b""),
        context_length=64,
        sampler=None,
    )
    return seq


def feed(seq: Sequence, tokens: list[int]) -> list[str]:
    """Append tokens until it finishes; the texts of the deltas it posted."""
    for token in tokens:
        seq.append(token, is_eog=token == EOG)
        if seq.is_finished:
            break
    return [delta.text for delta in deltas(seq)]


def deltas(seq: Sequence) -> list[Delta]:
    """Every delta it posted (ends the sequence as cancelled if it has not ended)."""
    seq.end_cancelled()

    async def read() -> list[Delta]:
        return [delta async for delta in seq]

    return seq._loop.run_until_complete(read())


def result(seq: Sequence) -> GenerationResult:
    return seq._loop.run_until_complete(seq.result())


def test_an_eog_token_stops_without_adding_text(loop: asyncio.AbstractEventLoop) -> None:
    seq = make_seq(loop)
    assert feed(seq, [0, 1, 2, EOG, 3]) == ["Hello", " wor", "ld"]
    ended = result(seq)
    assert ended.text == "Hello world"
    assert ended.finish_reason is FinishReason.STOP
    assert ended.usage.completion_tokens == 3


def test_the_budget_running_out_finishes_with_length(loop: asyncio.AbstractEventLoop) -> None:
    seq = make_seq(loop, budget=2)
    assert feed(seq, [0, 1, 2]) == ["Hello", " wor"]
    assert result(seq).finish_reason is FinishReason.LENGTH
    assert result(seq).usage.completion_tokens == 2


def test_running_out_of_context_says_so(loop: asyncio.AbstractEventLoop) -> None:
    seq = make_seq(loop, budget=token_budget(62, 64), prompt_tokens=62)
    feed(seq, [0, 1, 2])
    ended = result(seq)
    assert ended.finish_reason is FinishReason.LENGTH
    assert ended.detail == "stopped at the end of the 64-token context"


def test_a_stop_sequence_across_tokens_finishes_with_stop(loop: asyncio.AbstractEventLoop) -> None:
    seq = make_seq(loop, stops=("world",))
    assert feed(seq, [0, 1, 2, 3]) == ["Hello", " "]
    ended = result(seq)
    assert ended.text == "Hello " and ended.finish_reason is FinishReason.STOP


def test_held_back_text_is_emitted_when_the_budget_ends(loop: asyncio.AbstractEventLoop) -> None:
    seq = make_seq(loop, budget=2, stops=("world",))
    assert feed(seq, [0, 1]) == ["Hello", " wor"]
    assert result(seq).text == "Hello wor"


def test_cancel_releases_held_text_and_finishes_cancelled(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seq = make_seq(loop, stops=("world",))
    for token in (0, 1):
        seq.append(token, is_eog=False)
    seq.end_cancelled("the client left")
    assert deltas(seq)[-1].text == "wor"
    ended = result(seq)
    assert ended.finish_reason is FinishReason.CANCELLED and ended.text == "Hello wor"
    assert ended.detail == "the client left"


def test_a_partial_character_at_the_budget_end_is_dropped(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seq = make_seq(loop, budget=2)
    assert feed(seq, [0, 4]) == ["Hello"]
    assert result(seq).text == "Hello"
    assert result(seq).usage.completion_tokens == 2


def test_deltas_count_completion_tokens_so_far(loop: asyncio.AbstractEventLoop) -> None:
    seq = make_seq(loop)
    for token in (0, 4, 5):
        seq.append(token, is_eog=False)
    assert [delta.num_tokens for delta in deltas(seq)] == [1, 3]


def test_a_zero_budget_finishes_before_any_token(loop: asyncio.AbstractEventLoop) -> None:
    seq = make_seq(loop, budget=0)
    assert seq.is_finished
    assert result(seq).finish_reason is FinishReason.LENGTH
    assert result(seq).text == ""


def test_an_error_reaches_both_the_iteration_and_the_result(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seq = make_seq(loop)
    seq.fail(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        deltas(seq)
    with pytest.raises(RuntimeError, match="boom"):
        result(seq)


def test_a_closed_loop_orphans_the_sequence_so_its_slot_is_freed() -> None:
    loop = asyncio.new_event_loop()
    seq = make_seq(loop)
    loop.close()
    seq.append(0, is_eog=False)
    assert seq.is_cancelled
