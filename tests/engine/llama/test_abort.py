"""Interrupting a running llama_decode: a cancelled request or a closing
engine stops a long prompt chunk in the middle, and the requests that shared
its batch carry on with unchanged (greedy) output."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.engine.batched import BatchedEngine
from runtime.engine.llama.abort import AbortFlag
from runtime.engine.types import (
    CancelToken,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelSpec,
    SamplingParams,
)

GREEDY = SamplingParams(greedy=True)
# About 1,500 tokens, evaluated as one chunk (n_batch 2048): seconds of work.
LONG = "word " * 1500


def story(prompt: str = "Once upon a time", max_tokens: int = 16) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, sampling=GREEDY, max_tokens=max_tokens)


def test_the_flag_is_set_by_a_cancelled_token_or_closing_only_while_armed() -> None:
    flag, token, other = AbortFlag(), CancelToken(), CancelToken()
    closing = False
    with flag.armed([token], lambda: closing):
        assert not flag.is_set
        other.cancel()
        assert not flag.is_set
        token.cancel("stop")
        assert flag.is_set
    assert not flag.is_set  # cleared on the way out
    token2 = CancelToken()
    with flag.armed([token2], lambda: closing):
        pass
    token2.cancel()  # the block is over: no callback is left behind
    assert not flag.is_set
    with flag.armed([token], lambda: closing):  # cancelled before the block
        assert flag.is_set
    closing = True
    with flag.armed([], lambda: closing):
        assert flag.is_set


def plan_of(batch: Any) -> list[tuple[Any, int]]:
    return list(batch.chunks)


class DecodeSpy:
    """Wraps an engine's decode call to tell when a long chunk is inside llama.cpp."""

    def __init__(self, target: Any, name: str) -> None:
        self.inside = threading.Event()
        original: Callable[..., Any] = getattr(target, name)

        def spy(*args: Any) -> Any:
            if args[0].num_tokens > 100:  # a Batch
                self.inside.set()
            return original(*args)

        setattr(target, name, spy)


async def wait_inside(spy: DecodeSpy) -> None:
    async with asyncio.timeout(60):
        while not spy.inside.is_set():
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # well into the chunk


async def result_of(generation: Any) -> GenerationResult:
    async with asyncio.timeout(60):
        return await generation.result()  # type: ignore[no-any-return]


async def test_cancelling_a_request_stops_its_prompt_chunk_midway_and_its_batch_mates_continue(
    embedded_model_path: Path,
) -> None:
    engine = await asyncio.to_thread(
        BatchedEngine.load,
        ModelSpec(str(embedded_model_path), n_ctx=2048, n_batch=2048, parallel=2),
    )
    try:
        alone = await result_of(engine.submit(story()))
        spy = DecodeSpy(engine.model, "decode")
        mate = engine.submit(story())
        long = engine.submit(story(LONG))
        await wait_inside(spy)
        long.cancel()
        result = await result_of(long)
        assert result.finish_reason is FinishReason.CANCELLED
        # The chunk never finished: nothing of the prompt reached the KV cache.
        [seq] = [s for s in engine.scheduler.placement.slots if s and s.request is long.request]
        assert seq.num_kv == 0
        assert (await result_of(mate)).text == alone.text
        assert (await result_of(engine.submit(story()))).text == alone.text
    finally:
        await engine.close()


async def test_closing_the_engine_stops_a_prompt_chunk_midway(embedded_model_path: Path) -> None:
    engine = await asyncio.to_thread(
        BatchedEngine.load,
        ModelSpec(str(embedded_model_path), n_ctx=2048, n_batch=2048, parallel=2),
    )
    spy = DecodeSpy(engine.model, "decode")
    long = engine.submit(story(LONG))
    await wait_inside(spy)
    await engine.close()
    result = await result_of(long)
    assert result.finish_reason is FinishReason.CANCELLED
    assert result.detail == "the engine was closed"
    assert result.usage.completion_tokens == 0


async def test_a_one_slot_engine_stops_a_prompt_chunk_midway_and_serves_the_next_request(
    embedded_model_path: Path,
) -> None:
    engine = await asyncio.to_thread(
        BatchedEngine.load, ModelSpec(str(embedded_model_path), n_ctx=2048, n_batch=2048)
    )
    try:
        alone = await result_of(engine.submit(story()))
        spy = DecodeSpy(engine.model, "decode")
        long = engine.submit(story(LONG))
        await wait_inside(spy)
        long.cancel()
        result = await result_of(long)
        assert result.finish_reason is FinishReason.CANCELLED
        [seq] = [s for s in engine.scheduler.placement.slots if s and s.request is long.request]
        assert seq.num_kv == 0  # the chunk was not evaluated
        assert (await result_of(engine.submit(story()))).text == alone.text
    finally:
        await engine.close()
