"""Our engine in this process: `ModelPool().acquire(ModelSpec(...))`, then N
concurrent `engine.submit(...)` streams on one event loop — whatever engine the
pool chooses for the spec (the serial one, or the batching one when
`parallel > 1` selects it)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from runtime.engine import GenerationRequest, ModelPool, ModelSpec, SamplingParams
from scripts.benchmark.stats import RunRecord


def make_spec(
    path: str, n_ctx: int, n_batch: int, n_threads: int, parallel: int, **more: Any
) -> ModelSpec:
    """A spec asking for `parallel` slots and the `more` fields (each left out
    when this checkout's ModelSpec has no such field)."""
    fields = {f.name for f in dataclasses.fields(ModelSpec)}
    extra: dict[str, Any] = {"parallel": parallel} if "parallel" in fields else {}
    extra.update({name: value for name, value in more.items() if name in fields})
    if "max_queue" in fields:
        extra["max_queue"] = max(64, parallel)
    return ModelSpec(
        path=path,
        n_ctx=n_ctx,
        n_batch=n_batch,
        n_threads=n_threads,
        n_gpu_layers=0,
        device="cpu",
        **extra,
    )


def describe(engine: Any) -> dict[str, Any]:
    """Which engine the pool gave us, and the settings it reports."""
    info = engine.info
    return {
        "class": f"{type(engine).__module__}.{type(engine).__qualname__}",
        "context_length": info.context_length,
        "n_threads": info.n_threads,
        "n_batch": info.n_batch,
    }


@dataclasses.dataclass
class Answer:
    ttft_s: float  # submit → first text, measured here
    engine_ttft_s: float  # what the engine reports
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    finish_reason: str


async def one_request(
    engine: Any, prompt: str, max_tokens: int, grammar: str | None = None
) -> Answer:
    """Submit one greedy request (constrained by `grammar`, if any) and read it to the end."""
    submitted = time.perf_counter()
    # Only a request with a grammar names it: older checkouts (--against) have no such field.
    constrained: dict[str, Any] = {"grammar": grammar} if grammar is not None else {}
    generation = engine.submit(
        GenerationRequest(
            prompt=prompt,
            sampling=SamplingParams(greedy=True),
            max_tokens=max_tokens,
            **constrained,
        )
    )
    first: float | None = None
    async for delta in generation:
        if first is None and delta.text:
            first = time.perf_counter()
    result = await generation.result()
    end = time.perf_counter()
    usage = result.usage
    return Answer(
        ttft_s=(first or end) - submitted,
        engine_ttft_s=result.timings.ttft_s,
        prompt_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens,
        completion_tokens=usage.completion_tokens,
        finish_reason=str(result.finish_reason),
    )


async def run_clients(
    engine: Any, prompts: list[str], max_tokens: int, grammar: str | None = None
) -> RunRecord:
    """One concurrent client per prompt, all submitted together."""
    started = time.perf_counter()
    answers = await asyncio.gather(*(one_request(engine, p, max_tokens, grammar) for p in prompts))
    finished = time.perf_counter()
    return RunRecord(
        clients=len(prompts),
        wall_s=finished - started,
        ttft_s=[answer.ttft_s for answer in answers],
        completion_tokens=[answer.completion_tokens for answer in answers],
        finish_reasons=[answer.finish_reason for answer in answers],
    )


async def warm_prefix(
    engine: Any, system_prompt: str, questions: tuple[str, str], max_tokens: int
) -> dict[str, Any]:
    """Two requests sharing a long system prompt, one after the other: the
    first fills the cache (cold), the second should reuse it (warm)."""
    cold, warm = [
        dataclasses.asdict(await one_request(engine, system_prompt + question, max_tokens))
        for question in questions
    ]
    ratio = warm["ttft_s"] / cold["ttft_s"] if cold["ttft_s"] > 0 else None
    return {"cold": cold, "warm": warm, "ratio": ratio}


async def acquire(spec: ModelSpec) -> tuple[ModelPool, Any]:
    pool = ModelPool()
    return pool, await pool.acquire(spec)
