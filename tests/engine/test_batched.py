"""The batching engine on the real embedded model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.engine.batched import BatchedEngine
from runtime.engine.llama.backend import DecodeError
from runtime.engine.scheduler import Batch
from runtime.engine.sequence import Sequence
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
from runtime.errors import PromptTooLongError, QueueFullError, RuntimeFailure

GREEDY = SamplingParams(greedy=True)
SYSTEM = ChatMessage("system", "You are a helpful assistant.")
STORY = "Once upon a time"
LONG = "The quick brown fox jumps over the lazy dog. " * 40  # about 400 tokens


def story(max_tokens: int | None = 16, prompt: str = STORY, **kwargs: Any) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=max_tokens, **kwargs)


def chat(question: str, max_tokens: int = 16, system: ChatMessage = SYSTEM) -> GenerationRequest:
    messages = [system, ChatMessage("user", question)]
    return GenerationRequest(messages=messages, sampling=GREEDY, max_tokens=max_tokens)


# Prompts of different lengths: 4 to about 60 tokens.
REQUESTS: list[Callable[[], GenerationRequest]] = [
    lambda: story(20),
    lambda: chat("What is the capital of France?", 12),
    lambda: story(16, "def fibonacci(n):"),
    lambda: story(24, "In a galaxy far, far away, there was a small planet called"),
    lambda: chat("Write a haiku about the sea. " * 3, 18),
    lambda: story(10, "List three colors:"),
]


async def run(
    engine: BatchedEngine, request: GenerationRequest
) -> tuple[list[Delta], GenerationResult]:
    generation = engine.submit(request)
    deltas = [delta async for delta in generation]
    return deltas, await generation.result()


async def take(generation: Sequence, n: int) -> list[Delta]:
    deltas = []
    async for delta in generation:
        deltas.append(delta)
        if len(deltas) == n:
            break
    return deltas


async def load(path: Path, **settings: Any) -> BatchedEngine:
    settings.setdefault("parallel", 2)
    settings.setdefault("n_ctx", 256)
    return await asyncio.to_thread(BatchedEngine.load, ModelSpec(str(path), **settings))


async def settled(engine: BatchedEngine) -> None:
    """Wait until the worker has swept finished sequences out of its queues."""
    async with asyncio.timeout(10):
        while engine.scheduler.running or engine.scheduler.waiting:
            await asyncio.sleep(0.005)


async def test_batched_greedy_outputs_are_identical_to_the_same_requests_run_alone(
    batched: BatchedEngine,
) -> None:
    alone = [(await run(batched, make()))[1].text for make in REQUESTS]
    steps = batched.steps
    # Two start together; once the first streams, four more join at later
    # steps (more than the free slots: the last ones wait for a slot).
    generations = [batched.submit(make()) for make in REQUESTS[:2]]
    await take(generations[0], 3)
    generations += [batched.submit(make()) for make in REQUESTS[2:]]
    results = [await generation.result() for generation in generations]
    assert [result.text for result in results] == alone
    assert all(result.text for result in results)
    # Decoded together: far fewer steps than the sum of the completions.
    assert batched.steps - steps < sum(r.usage.completion_tokens for r in results)


async def test_a_seeded_sampled_request_gives_the_same_text_alone_and_batched(
    batched: BatchedEngine,
) -> None:
    def sampled() -> GenerationRequest:
        params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=7)
        return GenerationRequest(prompt=STORY, sampling=params, max_tokens=16)

    _, alone = await run(batched, sampled())
    others = [batched.submit(make()) for make in REQUESTS[:3]]
    _, together = await run(batched, sampled())
    await asyncio.gather(*(g.result() for g in others))
    assert together.text == alone.text


async def test_stop_sequences_and_max_tokens_apply_to_each_sequence_on_its_own(
    batched: BatchedEngine,
) -> None:
    _, baseline = await run(batched, story(24))
    words = baseline.text.split(" ")
    stop = " ".join(words[3:5])
    assert stop in baseline.text
    stopped = batched.submit(story(24, stop=(stop,)))
    capped = batched.submit(story(5))
    full = batched.submit(story(24))
    stopped_result, capped_result, full_result = [await g.result() for g in (stopped, capped, full)]
    assert stopped_result.finish_reason is FinishReason.STOP
    assert stopped_result.text == baseline.text[: baseline.text.index(stop)]
    assert capped_result.finish_reason is FinishReason.LENGTH
    assert capped_result.usage.completion_tokens == 5
    assert baseline.text.startswith(capped_result.text)
    assert full_result.text == baseline.text and full_result.usage.completion_tokens == 24


async def test_a_repeated_prompt_reuses_the_kv_cache_and_gives_the_cold_output(
    batched: BatchedEngine,
) -> None:
    request = chat("Name three rivers in Europe and say where each one flows.", 12)
    _, cold = await run(batched, request)
    assert cold.usage.cached_tokens == 0
    _, warm = await run(batched, chat(request.messages[1].content, 12))  # type: ignore[index]
    assert warm.usage.cached_tokens == warm.usage.prompt_tokens - 1
    assert warm.text == cold.text
    # A follow-up question shares the conversation so far.
    follow_up = chat(request.messages[1].content + " Then stop.", 12)  # type: ignore[index]
    _, longer = await run(batched, follow_up)
    assert 0 < longer.usage.cached_tokens < longer.usage.prompt_tokens


async def test_a_busy_slots_shared_system_prompt_is_copied_and_gives_the_cold_output(
    embedded_model_path: Path,
) -> None:
    system = ChatMessage("system", "You are a helpful assistant who answers briefly. " * 12)
    question = chat("What is 2+2?", 8, system)
    cold_engine = await load(embedded_model_path)
    try:
        _, cold = await run(cold_engine, question)
    finally:
        await cold_engine.close()
    engine = await load(embedded_model_path)
    try:
        busy = engine.submit(chat("Tell me a long story about dragons.", 40, system))
        await take(busy, 1)
        _, warm = await run(engine, chat("What is 2+2?", 8, system))
        await busy.result()
    finally:
        await engine.close()
    assert cold.usage.cached_tokens == 0
    assert warm.usage.cached_tokens > 100
    assert warm.text == cold.text


async def test_cancelling_a_long_request_lets_a_queued_one_start(
    embedded_model_path: Path,
) -> None:
    engine = await load(embedded_model_path)
    try:
        first, second = engine.submit(story(None)), engine.submit(story(None))
        queued = engine.submit(story(4, "List three colors:"))
        await take(first, 2)
        assert not queued.done()
        first.cancel()
        async with asyncio.timeout(30):
            result = await queued.result()
        assert result.finish_reason is FinishReason.LENGTH
        assert (await first.result()).finish_reason is FinishReason.CANCELLED
        assert not second.done()  # it kept its slot all along
        second.cancel()
        assert (await second.result()).finish_reason is FinishReason.CANCELLED
        await settled(engine)
        assert engine.scheduler.placement.num_free == 2
    finally:
        await engine.close()


async def test_cancelling_during_prefill_frees_the_slot(embedded_model_path: Path) -> None:
    engine = await load(embedded_model_path, parallel=2, n_ctx=1024, n_batch=16)
    try:
        long = engine.submit(story(4, LONG))
        async with asyncio.timeout(30):
            while not any(seq.num_kv > 0 for seq in engine.scheduler.running):
                await asyncio.sleep(0.001)
        long.cancel()
        result = await long.result()
        assert result.finish_reason is FinishReason.CANCELLED
        assert result.usage.completion_tokens == 0
        await settled(engine)
        assert engine.scheduler.placement.num_free == 2
        _, after = await run(engine, story(4))
        assert after.finish_reason is FinishReason.LENGTH
    finally:
        await engine.close()


async def test_no_slot_leaks_after_200_requests_with_random_cancellations(
    batched: BatchedEngine,
) -> None:
    prompts = [f"Story number {i}: once upon a time" for i in range(7)]
    reference = {p: (await run(batched, story(4, p)))[1].text for p in prompts}
    rng = random.Random(6)

    async def one(i: int) -> tuple[str, str, GenerationResult]:
        prompt = prompts[i % len(prompts)]
        how = rng.choice(["before", "at once", "after a delta", "never", "never"])
        cancel = CancelToken()
        if how == "before":
            cancel.cancel()
        generation = batched.submit(story(4, prompt, cancel=cancel))
        if how == "at once":
            generation.cancel()
        elif how == "after a delta":
            await take(generation, 1)
            generation.cancel()
        return prompt, how, await generation.result()

    async with asyncio.timeout(120):
        outcomes = await asyncio.gather(*(one(i) for i in range(200)))
    for prompt, how, result in outcomes:
        if how == "never":
            assert result.text == reference[prompt]
            assert result.finish_reason is FinishReason.LENGTH
        elif how == "before":
            assert result.finish_reason is FinishReason.CANCELLED
    await settled(batched)
    assert batched.scheduler.placement.num_free == 4
    assert not batched.scheduler.waiting and not batched.scheduler.running
    assert all(seq is None or seq.sampler is None for seq in batched.scheduler.placement.slots)


async def test_a_long_prompt_is_prefilled_in_chunks_while_other_streams_keep_decoding(
    batched: BatchedEngine,
) -> None:
    stream = batched.submit(story(None))
    arrivals: list[float] = []

    async def read() -> None:
        async for _ in stream:
            arrivals.append(time.perf_counter())

    reader = asyncio.create_task(read())
    async with asyncio.timeout(30):
        while not arrivals:
            await asyncio.sleep(0.001)
        submitted = time.perf_counter()
        long = batched.submit(story(2, LONG))
        await take(long, 1)
        first_long_delta = time.perf_counter()
        result = await long.result()
    stream.cancel()
    await reader
    assert result.usage.prompt_tokens > 6 * batched.info.n_batch  # at least 7 chunks
    during = [t for t in arrivals if submitted < t < first_long_delta]
    assert len(during) >= 5  # the stream kept going while the long prompt was evaluated


async def test_context_overflow_ends_only_that_sequence_with_length(
    embedded_model_path: Path,
) -> None:
    engine = await load(embedded_model_path, n_ctx=64)
    try:
        overflowing = engine.submit(story(None))
        short = engine.submit(story(5))
        too_long = engine.submit(story(4, "word " * 100))
        result = await overflowing.result()
        assert result.finish_reason is FinishReason.LENGTH
        assert result.usage.prompt_tokens + result.usage.completion_tokens == 64
        assert result.detail == "stopped at the end of the 64-token context"
        assert (await short.result()).usage.completion_tokens == 5
        with pytest.raises(PromptTooLongError):
            await too_long.result()
    finally:
        await engine.close()


async def test_a_failed_decode_fails_its_batch_and_the_engine_keeps_serving(
    batched: BatchedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, before = await run(batched, story(8))
    real_decode = batched.model.decode

    def failing(batch: Batch) -> list[Any]:
        monkeypatch.setattr(batched.model, "decode", real_decode)  # only once
        raise DecodeError(-3)

    monkeypatch.setattr(batched.model, "decode", failing)
    generation = batched.submit(story(8))
    with pytest.raises(RuntimeFailure, match="llama_decode failed"):
        await generation.result()
    _, after = await run(batched, story(8))
    assert after.text == before.text


async def test_a_full_queue_refuses_new_requests_at_submit(embedded_model_path: Path) -> None:
    engine = await load(embedded_model_path, max_queue=1)
    try:
        running = [engine.submit(story(None)) for _ in range(3)]  # two slots, one waiting
        with pytest.raises(QueueFullError, match="retry later"):
            engine.submit(story(4))
        for generation in running:
            generation.cancel()
        await asyncio.gather(*(g.result() for g in running))
    finally:
        await engine.close()


def recorded_in(threads: set[int], method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.get_ident())
        return method(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("slots", ["batched", "engine"])  # four slots, and one
async def test_llama_cpp_calls_happen_off_the_event_loop_thread(
    slots: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched: BatchedEngine = request.getfixturevalue(slots)
    threads: set[int] = set()

    def recorded(method: Callable[..., Any]) -> Callable[..., Any]:
        return recorded_in(threads, method)

    backend = batched.model
    # The context's calls run on the worker; tokenizing also runs on the
    # intake thread (the vocabulary is safe from any thread). Never the loop's.
    context_calls = ("decode", "sample", "is_eog", "keep_prefix")
    for name in context_calls:
        monkeypatch.setattr(backend, name, recorded(getattr(backend, name)))
    vocabulary_threads: set[int] = set()
    for name in ("encode", "new_sampler", "token_bytes"):
        method = getattr(backend, name)
        monkeypatch.setattr(backend, name, recorded_in(vocabulary_threads, method))
    generations = [batched.submit(make()) for make in REQUESTS[:3]]
    assert not any(g.done() for g in generations)  # submit() only queues
    await asyncio.gather(*(g.result() for g in generations))
    assert threads == {batched.worker_thread_id}
    assert vocabulary_threads and threading.get_ident() not in vocabulary_threads


async def test_usage_and_timings_are_reported(batched: BatchedEngine) -> None:
    request = story(8, "A fresh prompt about timings")
    _, result = await run(batched, request)
    assert result.usage.prompt_tokens == len(batched.prompt_tokens(request))
    assert result.usage.completion_tokens == 8
    assert 0 < result.timings.ttft_s <= result.timings.total_s
    assert result.timings.tokens_per_s > 0


async def test_closing_the_engine_cancels_its_requests(embedded_model_path: Path) -> None:
    engine = await load(embedded_model_path, parallel=2)
    generations = [engine.submit(story(None)) for _ in range(3)]
    await take(generations[0], 1)
    await engine.close()
    for generation in generations:
        result = await generation.result()
        assert result.finish_reason is FinishReason.CANCELLED
        assert result.detail == "the engine was closed"
    with pytest.raises(RuntimeFailure, match="closed"):
        engine.submit(story(4))


async def test_greedy_outputs_are_identical_with_parallel_1_and_parallel_4(
    batched: BatchedEngine, engine: BatchedEngine
) -> None:
    # One engine serves every `parallel`: the same prompts, submitted together
    # to four slots and to one (where they queue), give the same answers.
    assert (batched.stats().slots, engine.stats().slots) == (4, 1)
    together = [batched.submit(make()) for make in REQUESTS]
    queued = [engine.submit(make()) for make in REQUESTS]
    four = [(await generation.result()).text for generation in together]
    one = [(await generation.result()).text for generation in queued]
    assert four == one and all(four)
