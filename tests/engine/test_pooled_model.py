"""A pooled model's keep_alive, on the embedded model through the real pool:
who keeps it loaded, and how long."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.engine.pool import ModelPool
from runtime.engine.pooled_model import ModelState, idle_text, longest
from runtime.engine.types import GenerationRequest, ModelSpec, SamplingParams
from runtime.errors import RuntimeFailure


def spec(path: Path, max_queue: int = 64) -> ModelSpec:
    return ModelSpec(str(path), n_ctx=512, max_queue=max_queue)


async def until(check: Callable[[], bool], seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.02)


def test_the_longest_keep_alive_wins_and_none_is_for_ever() -> None:
    assert longest(5.0, 300.0) == 300.0
    assert longest(0.0, None) is None and longest(None, 1.0) is None


def test_idle_times_read_as_a_compose_file_writes_them() -> None:
    assert [idle_text(s) for s in (300, 3600, 30, 1.5, 0, 90)] == [
        "5m",
        "1h",
        "30s",
        "1.5s",
        "0s",
        "90s",
    ]


async def test_a_model_shared_by_two_callers_stays_loaded_as_long_as_the_longer_asks(
    embedded_model_path: Path,
) -> None:
    pool = ModelPool()
    model = await pool.model(spec(embedded_model_path, max_queue=4), keep_alive=0.2)
    async with model.use():
        pass
    # A second caller of the same model asks for longer (and a bigger queue).
    shared = await pool.model(spec(embedded_model_path, max_queue=32), keep_alive=60)
    assert shared is model and model.keep_alive == 60
    await asyncio.sleep(0.5)
    engine = model.engine
    assert model.state == ModelState.LOADED and engine is not None
    assert engine.max_queue == 32
    await pool.close()


async def test_an_engine_taken_without_a_lease_stays_loaded_while_it_generates(
    embedded_model_path: Path,
) -> None:
    """`acquire` holds nothing: the engine's own stats keep it loaded."""
    pool = ModelPool()
    model = await pool.model(spec(embedded_model_path), keep_alive=0.2)
    engine = await model.acquire()
    # Far more tokens than it gets time for: it runs until cancelled.
    request = GenerationRequest(
        prompt="Once upon a time", sampling=SamplingParams(greedy=True), max_tokens=400
    )
    generation = engine.submit(request)
    await asyncio.sleep(0.6)
    assert model.engine is engine and engine.stats().busy == 1
    generation.cancel()
    await generation.result()
    await until(lambda: model.state == ModelState.UNLOADED)
    assert pool.engines() == [] and [m.info for m in pool.models()] == [engine.info]
    # Loaded again, with its queue bound.
    again = await model.acquire()
    assert again is not engine and again.max_queue == 64
    await pool.close()


async def test_a_caller_that_gives_up_waiting_does_not_stop_the_reload(
    embedded_model_path: Path,
) -> None:
    pool = ModelPool()
    model = await pool.model(spec(embedded_model_path), keep_alive=0)
    first = await model.acquire()  # nothing holds it: unloaded at once
    await until(lambda: model.state == ModelState.UNLOADED and first.scheduler.is_closed)
    waiting = asyncio.ensure_future(model.acquire())
    await until(lambda: model.state == ModelState.LOADING)
    waiting.cancel()
    async with model.use() as engine:
        assert engine is not first
        result = await engine.submit(
            GenerationRequest(prompt="Hello", sampling=SamplingParams(greedy=True), max_tokens=3)
        ).result()
    assert result.usage.completion_tokens <= 3
    await pool.close()
    with pytest.raises(RuntimeFailure, match="closed"):
        await model.acquire()
