"""`scripts/bench --kv-pool`: what slots sharing one KV pool (llama.cpp's
unified cache, `kv_cache_size`) change against a stream per slot: the KV
memory, the throughput, and whether greedy outputs stay what they are when
each request runs alone (batch invariance).

The same story prompts go, greedy, through three engines in turn:
- `alone`: a stream per slot, one request at a time (the reference);
- `streams`: a stream per slot, every request submitted at once;
- `pool`: `kv_cache_size` = 2 contexts shared by the slots, all at once.
For each, how many outputs equal the reference's, and for those that do not,
how far (in characters) they agree first.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from runtime.engine.placement import common_prefix
from scripts.benchmark import engine_bench, prompts

CONFIGS = {"alone": (None, False), "streams": (None, True), "pool": (2, True)}


def measure(settings: dict[str, Any], count: int) -> dict[str, Any]:
    return asyncio.run(_measure(settings, count))


async def _measure(settings: dict[str, Any], count: int) -> dict[str, Any]:
    from runtime.engine.types import GenerationRequest, SamplingParams

    texts = prompts.rounds([count], 1, start=1000)[0]
    outputs: dict[str, list[str]] = {}
    results: dict[str, Any] = {"prompts": count, "max_tokens": settings["max_tokens"]}
    for name, (contexts, together) in CONFIGS.items():
        spec = engine_bench.make_spec(
            settings["model"],
            settings["n_ctx"],
            settings["n_batch"],
            settings["n_threads"],
            settings["parallel"],
            kv_cache_size=contexts * settings["n_ctx"] if contexts else None,
        )
        pool, engine = await engine_bench.acquire(spec)
        try:

            async def one(text: str, engine: Any = engine) -> tuple[str, int]:
                request = GenerationRequest(
                    prompt=text,
                    sampling=SamplingParams(greedy=True),
                    max_tokens=settings["max_tokens"],
                )
                result = await engine.submit(request).result()
                return result.text, result.usage.completion_tokens

            started = time.perf_counter()
            if together:
                answers = await asyncio.gather(*(one(text) for text in texts))
            else:
                answers = [await one(text) for text in texts]
            wall = time.perf_counter() - started
            memory = engine.info.memory
            outputs[name] = [text for text, _ in answers]
            results[name] = {
                "tokens_per_s": sum(tokens for _, tokens in answers) / wall,
                "kv_cache_bytes": memory.kv_cache if memory else None,
            }
        finally:
            await pool.close()
    for name in CONFIGS:
        pairs = zip(outputs["alone"], outputs[name], strict=True)
        agree = [common_prefix(a, b, len(a)) for a, b in pairs]
        differing = [n for n, a in zip(agree, outputs["alone"], strict=True) if n < len(a)]
        results[name]["identical"] = count - len(differing)
        results[name]["median_agreeing_chars"] = statistics.median(differing) if differing else None
    return results


def markdown(results: dict[str, Any], model_name: str) -> str:
    lines = [
        f"{results['prompts']} greedy story prompts, {results['max_tokens']} tokens each, "
        f"{model_name}:",
        "",
        "| engine | outputs identical to alone | median chars before a difference "
        "| tok/s | KV allocated (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in CONFIGS:
        row = results[name]
        agreeing = row["median_agreeing_chars"]
        lines.append(
            f"| {name} | {row['identical']}/{results['prompts']} | "
            f"{'–' if agreeing is None else f'{agreeing:.0f}'} | {row['tokens_per_s']:.1f} | "
            f"{(row['kv_cache_bytes'] or 0) / 1e6:.0f} |"
        )
    return "\n".join(lines)
