"""The engine reports its load (slots, busy, waiting) for the server's
`GET {base_path}/models`: it rises while requests run and wait, and falls back
to idle once they finish or are cancelled. It also counts the KV cells the
slots hold, which stay held after a request (the prefix cache)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from runtime.engine.batched import BatchedEngine
from runtime.engine.types import EngineStats, GenerationRequest, ModelSpec, SamplingParams

IDLE = (0, 0)


def endless(text: str) -> GenerationRequest:
    """A greedy request that runs until it is cancelled (the whole context)."""
    return GenerationRequest(prompt=text, sampling=SamplingParams(greedy=True))


async def until(engine: BatchedEngine, check: Callable[[EngineStats], bool]) -> None:
    async with asyncio.timeout(30):
        while not check(engine.stats()):
            await asyncio.sleep(0.01)


def load(stats: EngineStats) -> tuple[int, int]:
    """(busy, waiting)."""
    return stats.busy, stats.waiting


async def test_the_engine_counts_busy_slots_and_waiting_requests(
    embedded_model_path: Path,
) -> None:
    spec = ModelSpec(str(embedded_model_path), n_ctx=256, parallel=2, max_queue=4)
    engine = await asyncio.to_thread(BatchedEngine.load, spec)
    try:
        assert engine.stats() == EngineStats(slots=2, busy=0, waiting=0, kv_cells_used=0)
        generations = [engine.submit(endless(f"Story {i}: once upon a time")) for i in range(3)]
        await until(engine, lambda s: load(s) == (2, 1))
        for generation in generations:
            generation.cancel()
        await asyncio.gather(*(generation.result() for generation in generations))
        await until(engine, lambda s: load(s) == IDLE)
    finally:
        await engine.close()


async def test_a_one_slot_engine_counts_its_one_slot_and_the_queue(
    embedded_model_path: Path,
) -> None:
    spec = ModelSpec(str(embedded_model_path), n_ctx=256, max_queue=4)
    engine = await asyncio.to_thread(BatchedEngine.load, spec)
    try:
        assert engine.stats() == EngineStats(slots=1, busy=0, waiting=0, kv_cells_used=0)
        generations = [engine.submit(endless(f"Story {i}: once upon a time")) for i in range(3)]
        await until(engine, lambda s: load(s) == (1, 2))
        for generation in generations:
            generation.cancel()
        await asyncio.gather(*(generation.result() for generation in generations))
        await until(engine, lambda s: load(s) == IDLE)
    finally:
        await engine.close()


async def test_the_kv_cells_in_use_follow_what_the_slots_hold(embedded_model_path: Path) -> None:
    spec = ModelSpec(str(embedded_model_path), n_ctx=256, parallel=2)
    engine = await asyncio.to_thread(BatchedEngine.load, spec)
    try:
        request = GenerationRequest(
            prompt="Once upon a time", max_tokens=8, sampling=SamplingParams(greedy=True)
        )
        prompt = len(engine.prompt_tokens(request))
        result = await engine.submit(request).result()
        held = engine.stats().kv_cells_used
        # The prompt and every token but the last sampled one went through the
        # model, and stay in the slot for the next request to reuse.
        assert held == prompt + result.usage.completion_tokens - 1
        await engine.submit(request).result()  # the same prompt reuses that slot
        assert engine.stats().kv_cells_used == held
    finally:
        await engine.close()
