"""The engine with one slot (`parallel: 1`) on the real embedded model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runtime.engine.batched import BatchedEngine
from runtime.engine.types import (
    CancelToken,
    ChatMessage,
    Delta,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelSpec,
    SamplingParams,
)
from runtime.errors import InputError, PromptTooLongError, QueueFullError, RuntimeFailure

GREEDY = SamplingParams(greedy=True)
# The model's built-in default system prompt makes it ramble in French about
# the capital; a plain one gets the answer every time.
SYSTEM = ChatMessage("system", "You are a helpful assistant.")
STORY = "Once upon a time"


async def run(
    engine: BatchedEngine, request: GenerationRequest
) -> tuple[list[Delta], GenerationResult]:
    generation = engine.submit(request)
    deltas = [delta async for delta in generation]
    return deltas, await generation.result()


def story(max_tokens: int | None = 24, **kwargs: Any) -> GenerationRequest:
    return GenerationRequest(prompt=STORY, sampling=GREEDY, max_tokens=max_tokens, **kwargs)


async def test_greedy_output_is_identical_twice(engine: BatchedEngine) -> None:
    _, first = await run(engine, story())
    _, second = await run(engine, story())
    assert first.text and first.text == second.text
    assert first.usage.completion_tokens == second.usage.completion_tokens == 24


async def test_a_repeated_prompt_reuses_the_kv_cache(engine: BatchedEngine) -> None:
    await run(engine, story(4))
    _, again = await run(engine, story(4))
    # Everything but the last prompt token, whose logits must be recomputed.
    assert again.usage.cached_tokens == again.usage.prompt_tokens - 1


async def test_a_seed_makes_sampling_reproducible(engine: BatchedEngine) -> None:
    def sampled(seed: int) -> GenerationRequest:
        params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
        return GenerationRequest(prompt=STORY, sampling=params, max_tokens=16)

    _, first = await run(engine, sampled(42))
    _, second = await run(engine, sampled(42))
    assert first.text == second.text
    others = {(await run(engine, sampled(seed)))[1].text for seed in (1, 2, 3)}
    assert others != {first.text}


async def test_a_greedy_chat_knows_the_capital_of_france(engine: BatchedEngine) -> None:
    messages = [SYSTEM, ChatMessage("user", "What is the capital of France?")]
    _, result = await run(
        engine, GenerationRequest(messages=messages, sampling=GREEDY, max_tokens=32)
    )
    assert "Paris" in result.text
    assert result.finish_reason is FinishReason.STOP  # the end-of-turn token
    assert "<|im_end|>" not in result.text


async def test_streamed_deltas_concatenate_to_the_final_text(engine: BatchedEngine) -> None:
    deltas, result = await run(engine, story())
    assert len(deltas) > 1
    assert "".join(d.text for d in deltas) == result.text
    counts = [d.num_tokens for d in deltas]
    assert counts == sorted(counts) and counts[-1] == result.usage.completion_tokens


async def test_max_tokens_finishes_with_length(engine: BatchedEngine) -> None:
    _, result = await run(engine, story(5))
    assert result.finish_reason is FinishReason.LENGTH
    assert result.usage.completion_tokens == 5
    assert result.detail is None


async def test_max_length_caps_prompt_plus_output(engine: BatchedEngine) -> None:
    prompt_tokens = len(engine.prompt_tokens(story()))
    _, result = await run(engine, story(None, max_length=prompt_tokens + 3))
    assert result.finish_reason is FinishReason.LENGTH
    assert result.usage.completion_tokens == 3


async def test_a_stop_sequence_spanning_tokens_ends_the_text_before_it(
    engine: BatchedEngine,
) -> None:
    _, baseline = await run(engine, story())
    words = baseline.text.split(" ")
    stop = " ".join(words[3:5])  # two words: at least two tokens
    assert " " in stop and stop in baseline.text
    deltas, result = await run(engine, story(stop=(stop, "never appears")))
    assert result.finish_reason is FinishReason.STOP
    assert result.text == baseline.text[: baseline.text.index(stop)]
    assert "".join(d.text for d in deltas) == result.text
    assert result.usage.completion_tokens < baseline.usage.completion_tokens


async def test_multibyte_characters_arrive_whole(engine: BatchedEngine) -> None:
    messages = [SYSTEM, ChatMessage("user", "How do you say 'thank you' in Japanese?")]
    deltas, result = await run(
        engine, GenerationRequest(messages=messages, sampling=GREEDY, max_tokens=12)
    )
    assert "\ufffd" not in result.text
    assert "".join(d.text for d in deltas) == result.text
    # Some Japanese character took more than one token and still came out whole.
    steps = zip([Delta("", 0), *deltas], deltas, strict=False)
    assert any(
        now.num_tokens - before.num_tokens > 1 and any(ord(c) > 0x2000 for c in now.text)
        for before, now in steps
    )


async def test_a_budget_that_ends_inside_a_character_drops_its_partial_bytes(
    engine: BatchedEngine,
) -> None:
    # Each 🎉 takes several tokens: 20 of them end in the middle of the seventh.
    messages = [ChatMessage("user", "Reply with three emoji 🎉")]
    request = GenerationRequest(messages=messages, sampling=GREEDY, max_tokens=20)
    deltas, result = await run(engine, request)
    assert result.finish_reason is FinishReason.LENGTH
    assert result.usage.completion_tokens == 20
    assert result.text.startswith("🎉🎉") and result.text.endswith("🎉")
    assert "\ufffd" not in result.text
    assert "".join(d.text for d in deltas) == result.text


def test_the_chat_template_is_applied_with_one_bos(engine: BatchedEngine) -> None:
    messages = [SYSTEM, ChatMessage("user", "Hello")]
    text = engine.chat_template.render(messages)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert "<|im_start|>user\nHello<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    tokens = engine.prompt_tokens(GenerationRequest(messages=messages))
    bos = engine.model.special.bos_id
    assert tokens[0] == bos and tokens[1] != bos
    assert tokens == engine.model.encode(text)


def test_bos_is_added_once_when_the_model_wants_it(
    engine: BatchedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    model = engine.model
    bos = model.special.bos_id
    monkeypatch.setattr(model, "special", replace(model.special, adds_bos=True))
    hello = model.encode("Hello")
    assert hello[0] == bos and hello.count(bos) == 1
    with_bos = model.encode(model.special.bos_text + "user\nHi")
    assert with_bos[0] == bos and with_bos[1] != bos


async def test_cancelling_mid_stream_finishes_cancelled(engine: BatchedEngine) -> None:
    generation = engine.submit(story(None))  # would fill the whole context
    deltas = []
    async with asyncio.timeout(30):
        async for delta in generation:
            deltas.append(delta)
            if len(deltas) == 3:
                generation.cancel()
        result = await generation.result()
    assert result.finish_reason is FinishReason.CANCELLED
    assert 3 <= result.usage.completion_tokens < 32
    assert result.text == "".join(d.text for d in deltas)


async def test_a_request_cancelled_before_it_starts_does_no_work(engine: BatchedEngine) -> None:
    token = CancelToken()
    token.cancel()
    deltas, result = await run(engine, story(cancel=token))
    assert deltas == []
    assert result.finish_reason is FinishReason.CANCELLED
    assert result.usage.prompt_tokens == 0 and result.usage.completion_tokens == 0


async def test_a_failing_request_does_not_break_the_next_one(
    engine: BatchedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, baseline = await run(engine, story(8))

    def broken(token: int) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.model, "token_bytes", broken)
    generation = engine.submit(story(8))
    with pytest.raises(RuntimeFailure, match="boom"):
        async for _ in generation:
            pass
    with pytest.raises(RuntimeFailure, match="boom"):
        await generation.result()

    monkeypatch.undo()
    _, after = await run(engine, story(8))
    assert after.text == baseline.text
    assert after.usage.cached_tokens == 0  # the context was reset after the failure


async def test_concurrent_requests_are_served_one_after_another(engine: BatchedEngine) -> None:
    generations = [engine.submit(story(6)) for _ in range(3)]
    results = await asyncio.gather(*(g.result() for g in generations))
    assert len({r.text for r in results}) == 1
    assert all(r.finish_reason is FinishReason.LENGTH for r in results)


async def test_a_full_queue_refuses_new_requests_at_submit(engine: BatchedEngine) -> None:
    while engine.stats().busy:  # an earlier test's request may still be finishing
        await asyncio.sleep(0.01)
    engine.max_queue = 1
    try:
        accepted = [engine.submit(story(None))]
        while not engine.stats().busy:  # running: the next one waits
            await asyncio.sleep(0.01)
        accepted.append(engine.submit(story(4)))
        with pytest.raises(QueueFullError, match=r"1 are already waiting.*retry later"):
            engine.submit(story(4))
        for generation in accepted:
            generation.cancel()
        await asyncio.gather(*(g.result() for g in accepted))
        await engine.submit(story(2)).result()  # room again once they finished
    finally:
        engine.max_queue = 64


async def test_usage_and_timings_are_reported(engine: BatchedEngine) -> None:
    request = story(8)
    _, result = await run(engine, request)
    assert result.usage.prompt_tokens == len(engine.prompt_tokens(request))
    assert result.usage.completion_tokens == 8
    assert result.usage.total_tokens == result.usage.prompt_tokens + 8
    timings = result.timings
    assert 0 < timings.ttft_s <= timings.total_s
    assert timings.tokens_per_s > 0


async def test_an_empty_prompt_is_an_input_error(engine: BatchedEngine) -> None:
    generation = engine.submit(GenerationRequest(prompt="", max_tokens=4))
    with pytest.raises(InputError):
        await generation.result()


def test_a_request_needs_exactly_one_of_prompt_and_messages(engine: BatchedEngine) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        engine.submit(GenerationRequest())


async def test_a_prompt_longer_than_the_context_is_rejected_with_both_numbers(
    small_engine: BatchedEngine,
) -> None:
    generation = small_engine.submit(GenerationRequest(prompt="word " * 100, max_tokens=4))
    with pytest.raises(PromptTooLongError) as caught:
        async for _ in generation:
            pass
    assert caught.value.prompt_tokens >= 100
    assert caught.value.context_length == 64
    assert str(caught.value.prompt_tokens) in str(caught.value) and "64" in str(caught.value)
    with pytest.raises(PromptTooLongError):
        await generation.result()


async def test_a_huge_max_tokens_is_clamped_to_the_room_left(small_engine: BatchedEngine) -> None:
    request = story(32768)
    prompt_tokens = len(small_engine.prompt_tokens(request))
    _, result = await run(small_engine, request)
    room = 64 - prompt_tokens
    assert result.detail == (
        f"max output length 32768 clamped to the {room} tokens left in the "
        f"64-token context (the prompt is {prompt_tokens} tokens)"
    )
    assert result.finish_reason is FinishReason.LENGTH
    assert result.usage.completion_tokens == room


async def test_without_max_tokens_generation_stops_at_the_end_of_the_context(
    small_engine: BatchedEngine,
) -> None:
    _, result = await run(small_engine, story(None))
    assert result.finish_reason is FinishReason.LENGTH
    assert result.usage.prompt_tokens + result.usage.completion_tokens == 64
    assert result.detail == "stopped at the end of the 64-token context"


async def test_closing_the_engine_cancels_its_requests(embedded_model_path: Any) -> None:
    engine = await asyncio.to_thread(BatchedEngine.load, ModelSpec(str(embedded_model_path)))
    running = engine.submit(story(None))
    queued = engine.submit(story(4))
    await engine.close()
    for generation in (running, queued):
        result = await generation.result()
        assert result.finish_reason is FinishReason.CANCELLED
        assert result.detail == "the engine was closed"
    with pytest.raises(RuntimeFailure, match="closed"):
        engine.submit(story(4))
