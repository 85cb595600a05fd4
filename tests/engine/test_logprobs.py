"""Log-probabilities: the arithmetic on a row of logits, which tokens of a
sequence get an entry (without a model), and the engine's on the real
embedded model, alone and in a batch."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import numpy as np
import pytest

from runtime.engine.batched import BatchedEngine
from runtime.engine.budget import TokenBudget
from runtime.engine.logprobs import MIN_LOGPROB, TokenLogprob, token_logprob
from runtime.engine.sequence import Sequence
from runtime.engine.types import ChatMessage, Delta, GenerationRequest, GenerationResult
from runtime.engine.types import SamplingParams as Sampling

# -- the arithmetic ------------------------------------------------------------------


def names(token: int) -> bytes:
    return f"t{token}".encode()


def test_a_token_gets_the_log_softmax_of_its_logit_and_the_most_likely_come_first() -> None:
    logits = np.array([1.0, 3.0, 2.0, 3.0], dtype=np.float32)
    entry = token_logprob(logits, 2, 3, names)
    total = math.log(sum(math.exp(x) for x in logits))
    assert entry.bytes == b"t2"
    assert entry.logprob == pytest.approx(2.0 - total)
    # Equal logits in token order, so the order never depends on the sort.
    assert [t.bytes for t in entry.top] == [b"t1", b"t3", b"t2"]
    assert [t.logprob for t in entry.top] == pytest.approx([3.0 - total, 3.0 - total, 2 - total])


def test_no_alternatives_are_computed_unless_asked_and_never_more_than_the_vocabulary() -> None:
    logits = np.array([0.0, 1.0], dtype=np.float32)
    assert token_logprob(logits, 0, 0, names).top == ()
    assert len(token_logprob(logits, 0, 20, names).top) == 2


def test_a_token_the_model_rules_out_gets_openais_floor_not_minus_infinity() -> None:
    logits = np.array([0.0, -np.inf, 5.0], dtype=np.float32)
    assert token_logprob(logits, 1, 3, names).logprob == MIN_LOGPROB
    assert token_logprob(logits, 1, 3, names).top[-1].logprob == MIN_LOGPROB


def test_huge_logits_do_not_overflow() -> None:
    logits = np.array([1e4, 1e4 + 1.0], dtype=np.float32)
    entry = token_logprob(logits, 1, 1, names)
    assert entry.logprob == pytest.approx(-math.log1p(math.exp(-1.0)))


# -- which tokens of a sequence have an entry -------------------------------------------

VOCAB = {
    0: b"Hello",
    1: b" world",
    2: b"!",
    3: b"<think>",
    4: b"hmm",
    5: b"</think>",
    6: b"\n\n",
    7: "é".encode()[:1],
    8: b" END",
}
EOG = 99


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def generate(
    loop: asyncio.AbstractEventLoop,
    tokens: list[int],
    budget: int = 10,
    stops: tuple[str, ...] = (),
) -> tuple[list[Delta], GenerationResult]:
    """A sequence asking for logprobs fed `tokens` (each token's entry has the
    token's id as its logprob, to tell them apart): its deltas and result."""
    seq = Sequence(GenerationRequest(prompt="x", stop=stops, logprobs=0), loop)
    seq.prepare(
        [1], TokenBudget(budget), token_bytes=VOCAB.__getitem__, context_length=64, sampler=None
    )
    for token in tokens:
        entry = None if token == EOG else TokenLogprob(VOCAB[token], float(token))
        seq.append(token, is_eog=token == EOG, logprob=entry)
        if seq.is_finished:
            break
    seq.end_cancelled()

    async def read() -> tuple[list[Delta], GenerationResult]:
        return [delta async for delta in seq], await seq.result()

    return loop.run_until_complete(read())


def ids(entries: tuple[TokenLogprob, ...] | None) -> list[int]:
    return [int(entry.logprob) for entry in entries or ()]


def test_every_answer_token_has_an_entry_and_each_goes_out_with_its_text(
    loop: asyncio.AbstractEventLoop,
) -> None:
    deltas, result = generate(loop, [0, 1, 2, EOG])
    assert ids(result.logprobs) == [0, 1, 2]
    assert [(d.text, ids(d.logprobs)) for d in deltas] == [
        ("Hello", [0]),
        (" world", [1]),
        ("!", [2]),
    ]


def test_reasoning_tokens_have_no_entry(loop: asyncio.AbstractEventLoop) -> None:
    deltas, result = generate(loop, [3, 4, 5, 6, 0, EOG])
    assert result.reasoning == "hmm" and result.text == "Hello"
    # "\n\n" after the block counts as an answer token, but its text is dropped.
    assert ids(result.logprobs) == [0]
    assert all(d.logprobs == () for d in deltas if d.reasoning)


def test_a_stop_sequences_tokens_have_no_entry(loop: asyncio.AbstractEventLoop) -> None:
    _, result = generate(loop, [0, 8, 1], stops=(" END",))
    assert result.text == "Hello" and ids(result.logprobs) == [0]


def test_the_token_of_a_character_cut_at_the_end_has_no_entry(
    loop: asyncio.AbstractEventLoop,
) -> None:
    _, result = generate(loop, [0, 7], budget=2)
    assert result.text == "Hello" and ids(result.logprobs) == [0]


def test_text_held_back_takes_its_entries_along_when_it_goes_out(
    loop: asyncio.AbstractEventLoop,
) -> None:
    deltas, _ = generate(loop, [0, 2, 1, EOG], stops=("!!",))
    assert [(d.text, ids(d.logprobs)) for d in deltas] == [("Hello", [0]), ("! world", [2, 1])]


# -- on the real model ---------------------------------------------------------------

QUESTION = [
    ChatMessage("system", "You are a helpful assistant."),
    ChatMessage("user", "What is the capital of France?"),
]
GREEDY = Sampling(greedy=True)


async def run(
    engine: BatchedEngine, request: GenerationRequest
) -> tuple[list[Delta], GenerationResult]:
    generation = engine.submit(request)
    deltas = [delta async for delta in generation]
    return deltas, await generation.result()


async def test_a_greedy_answer_is_made_of_the_most_likely_tokens(engine: BatchedEngine) -> None:
    request = GenerationRequest(messages=QUESTION, sampling=GREEDY, max_tokens=20, logprobs=5)
    deltas, result = await run(engine, request)
    entries = result.logprobs or ()
    assert "Paris" in result.text
    assert len(entries) == result.usage.completion_tokens
    assert b"".join(e.bytes for e in entries).decode() == result.text
    assert [e for d in deltas for e in d.logprobs] == list(entries)
    for entry in entries:
        assert len(entry.top) == 5
        assert entry.top[0].bytes == entry.bytes and entry.top[0].logprob == entry.logprob
        assert all(a.logprob >= b.logprob for a, b in zip(entry.top, entry.top[1:], strict=False))
        assert sum(math.exp(t.logprob) for t in entry.top) <= 1.0 + 1e-6
        assert entry.logprob <= 0.0


async def test_they_are_the_models_probabilities_whatever_the_sampler(
    engine: BatchedEngine,
) -> None:
    # top_k 1 picks the greedy tokens, but after a temperature of 2: the
    # sampler's own probability would be 1, the model's is not.
    hot = Sampling(temperature=2.0, top_k=1, top_p=1.0, min_p=0.0, seed=1)
    greedy = GenerationRequest(messages=QUESTION, sampling=GREEDY, max_tokens=8, logprobs=0)
    sampled = GenerationRequest(messages=QUESTION, sampling=hot, max_tokens=8, logprobs=0)
    _, first = await run(engine, greedy)
    _, second = await run(engine, sampled)
    assert first.text == second.text
    assert [e.logprob for e in first.logprobs or ()] == pytest.approx(
        [e.logprob for e in second.logprobs or ()], abs=1e-4
    )
    assert any(e.logprob < -0.1 for e in second.logprobs or ())


async def test_a_request_that_does_not_ask_gets_none(engine: BatchedEngine) -> None:
    deltas, result = await run(
        engine, GenerationRequest(messages=QUESTION, sampling=GREEDY, max_tokens=4)
    )
    assert result.logprobs is None and all(d.logprobs == () for d in deltas)


async def test_in_a_batch_each_request_gets_the_logprobs_of_its_own_row(
    batched: BatchedEngine,
) -> None:
    prompts = ["Once upon a time", "The capital of France is", "1, 2, 3, 4,", "def main():"]

    def request(prompt: str, logprobs: int | None) -> GenerationRequest:
        return GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=6, logprobs=logprobs)

    alone = [(await run(batched, request(p, 2)))[1] for p in prompts]
    # Together, with a neighbour that does not ask for logprobs.
    together = await asyncio.gather(
        *(run(batched, request(p, 2)) for p in prompts), run(batched, request("Hello", None))
    )
    for solo, (_, mixed) in zip(alone, together, strict=False):
        assert mixed.text == solo.text
        assert [e.bytes for e in mixed.logprobs or ()] == [e.bytes for e in solo.logprobs or ()]
        assert [e.logprob for e in mixed.logprobs or ()] == pytest.approx(
            [e.logprob for e in solo.logprobs or ()], abs=1e-3
        )


def test_a_request_may_ask_for_at_most_20_alternatives(engine: BatchedEngine) -> None:
    with pytest.raises(ValueError, match="logprobs must be 0 to 20"):
        engine.submit(GenerationRequest(prompt="x", logprobs=21))


async def test_only_the_answer_has_entries_not_the_reasoning(batched: BatchedEngine) -> None:
    # The prompt opens a block; the budget closes it after 6 tokens.
    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    request = GenerationRequest(
        prompt=prompt, sampling=GREEDY, max_tokens=40, reasoning_budget=6, logprobs=1
    )
    deltas, result = await run(batched, request)
    entries = result.logprobs or ()
    assert result.reasoning and result.text
    # Space at the start of the answer is dropped with the block's end.
    assert b"".join(e.bytes for e in entries).decode().lstrip() == result.text
    assert len(entries) <= result.usage.completion_tokens - result.usage.reasoning_tokens
    assert all(d.logprobs == () for d in deltas if d.reasoning)
