"""The model pool: one load per distinct model, shared by every caller."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from runtime.engine.pool import ModelPool
from runtime.engine.types import (
    GenerationRequest,
    ModelInfo,
    ModelSpec,
    SamplingParams,
)
from runtime.errors import ModelLoadError, RuntimeFailure


class FakeEngine:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.max_queue = spec.max_queue
        self.closed = False
        self.info = ModelInfo(spec.path, "fake", spec.n_ctx or 0, 0, 0, 1, 1)

    def submit(self, request: GenerationRequest) -> object:
        raise NotImplementedError

    async def close(self) -> None:
        self.closed = True


class CountingFactory:
    def __init__(self, fail_first: int = 0) -> None:
        self.specs: list[ModelSpec] = []
        self.threads: set[int] = set()
        self.fail_first = fail_first

    def __call__(self, spec: ModelSpec) -> FakeEngine:
        self.threads.add(threading.get_ident())
        self.specs.append(spec)
        if len(self.specs) <= self.fail_first:
            raise ModelLoadError("disk on fire")
        return FakeEngine(spec)


async def test_the_same_spec_loads_once_even_when_asked_concurrently(
    embedded_model_path: Path,
) -> None:
    factory = CountingFactory()
    pool = ModelPool(factory)
    spec = ModelSpec(str(embedded_model_path))
    engines = await asyncio.gather(*(pool.acquire(spec) for _ in range(5)))
    assert len(factory.specs) == 1
    assert all(engine is engines[0] for engine in engines)
    assert threading.get_ident() not in factory.threads  # loading ran in a thread
    await pool.close()


async def test_specs_that_resolve_alike_share_one_model(
    embedded_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = CountingFactory()
    pool = ModelPool(factory)
    monkeypatch.chdir(embedded_model_path.parent)
    first = await pool.acquire(ModelSpec(embedded_model_path.name))
    second = await pool.acquire(ModelSpec(str(embedded_model_path), n_ctx=4096, device="AUTO"))
    assert first is second and len(factory.specs) == 1
    assert factory.specs[0].n_ctx == 4096 and factory.specs[0].path == str(embedded_model_path)
    await pool.close()


async def test_different_settings_load_separately(embedded_model_path: Path) -> None:
    factory = CountingFactory()
    pool = ModelPool(factory)
    await pool.acquire(ModelSpec(str(embedded_model_path), n_ctx=512))
    await pool.acquire(ModelSpec(str(embedded_model_path), n_ctx=1024))
    assert [s.n_ctx for s in factory.specs] == [512, 1024]
    assert sorted(info.context_length for info in pool.loaded()) == [512, 1024]
    await pool.close()


async def test_a_failed_load_is_tried_again_next_time(embedded_model_path: Path) -> None:
    factory = CountingFactory(fail_first=1)
    pool = ModelPool(factory)
    spec = ModelSpec(str(embedded_model_path))
    with pytest.raises(ModelLoadError, match="disk on fire"):
        await pool.acquire(spec)
    assert await pool.acquire(spec) is not None
    assert len(factory.specs) == 2
    await pool.close()


async def test_a_bad_file_fails_before_any_load(tmp_path: Path) -> None:
    factory = CountingFactory()
    pool = ModelPool(factory)
    with pytest.raises(ModelLoadError, match="not found"):
        await pool.acquire(ModelSpec(str(tmp_path / "nope.gguf")))
    assert factory.specs == []


async def test_closing_the_pool_closes_every_engine(embedded_model_path: Path) -> None:
    factory = CountingFactory()
    pool = ModelPool(factory)
    engines = [await pool.acquire(ModelSpec(str(embedded_model_path), n_ctx=n)) for n in (256, 512)]
    await pool.close()
    assert all(engine.closed for engine in engines)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeFailure, match="closed"):
        await pool.acquire(ModelSpec(str(embedded_model_path)))


async def test_a_real_model_loads_through_the_pool_and_generates(
    embedded_model_path: Path,
) -> None:
    pool = ModelPool()
    engine = await pool.acquire(ModelSpec(str(embedded_model_path), n_ctx=256))
    assert engine.info.context_length == 256
    generation = engine.submit(
        GenerationRequest(prompt="Hello", sampling=SamplingParams(greedy=True), max_tokens=3)
    )
    result = await generation.result()
    assert result.usage.completion_tokens <= 3
    await pool.close()


async def test_one_slot_and_many_load_the_same_engine_as_two_models(
    embedded_model_path: Path,
) -> None:
    from runtime.engine.batched import BatchedEngine

    pool = ModelPool()
    batched = await pool.acquire(ModelSpec(str(embedded_model_path), n_ctx=256, parallel=2))
    single = await pool.acquire(ModelSpec(str(embedded_model_path), n_ctx=256, parallel=1))
    assert isinstance(batched, BatchedEngine) and isinstance(single, BatchedEngine)
    assert batched is not single and single.stats().slots == 1
    result = await batched.submit(
        GenerationRequest(prompt="Hello", sampling=SamplingParams(greedy=True), max_tokens=3)
    ).result()
    assert result.usage.completion_tokens <= 3
    await pool.close()


async def test_components_differing_only_in_max_queue_share_one_model_and_its_largest_queue(
    embedded_model_path: Path,
) -> None:
    factory = CountingFactory()
    pool = ModelPool(factory)
    path = str(embedded_model_path)
    small = await pool.acquire(ModelSpec(path, parallel=2, max_queue=4))
    large = await pool.acquire(ModelSpec(path, parallel=2, max_queue=32))
    assert small is large
    assert len(factory.specs) == 1
    assert large.max_queue == 32
    assert (await pool.acquire(ModelSpec(path, parallel=2, max_queue=8))).max_queue == 32
    await pool.close()
