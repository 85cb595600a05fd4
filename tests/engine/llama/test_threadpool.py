"""Persistent compute threads: the engine attaches llama.cpp threadpools to
its context, with one slot or many (instead of ggml's per-decode threads),
and frees them on close."""

from __future__ import annotations

import asyncio
from pathlib import Path

from runtime.engine.batched import BatchedEngine
from runtime.engine.types import GenerationRequest, ModelSpec, SamplingParams

GREEDY = SamplingParams(greedy=True)


def test_one_slot_and_many_decode_on_attached_pools(
    batched: BatchedEngine, engine: BatchedEngine
) -> None:
    assert batched.model._threads.attached
    assert engine.model._threads.attached


async def test_an_engine_with_pools_decodes_alike_twice_and_closes(
    embedded_model_path: Path,
) -> None:
    spec = ModelSpec(str(embedded_model_path), n_ctx=256, parallel=2, n_threads=1)
    engine = await asyncio.to_thread(BatchedEngine.load, spec)
    request = GenerationRequest(prompt="Once upon a time", sampling=GREEDY, max_tokens=8)
    first = await engine.submit(request).result()
    second = await engine.submit(request).result()
    assert first.text == second.text and first.usage.completion_tokens == 8
    assert engine.model._threads.attached
    await engine.close()
    assert not engine.model._threads.attached  # detached and freed before the context
