"""`scripts/bench --compare-extra-buffers`: what the build's extra CPU buffer
types (weight repacking; AMX where built) are worth, against the emergency
fallback that loads models without them (MODEL_COMPOSE_EXTRA_BUFFERS=0, what
runtime/engine/llama/extra_buffers.py does on a build with the crashing AMX kernel).

Both run our engine in-process, in fresh worker processes, alternating
(build, fallback, build, fallback, ...) so that a change in the machine's load
hits both alike; each figure is the median over the repetitions:
- prompt processing tokens/s: 1 client, and 4 clients submitted together,
  each with its own prompt of about `pp_tokens` tokens (one completion token);
- decode tokens/s: 1 and 4 clients, after the first token of the last client
  and until the last finish.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from scripts.benchmark import prompts

MODES = {"build": None, "fallback": "0"}
CLIENTS = (1, 4)


def job(settings: dict[str, Any]) -> dict[str, Any]:
    """One worker's measurement (worker.py runs it in a fresh process)."""
    return asyncio.run(_job(settings))


async def _job(settings: dict[str, Any]) -> dict[str, Any]:
    from runtime.engine.llama import extra_buffers
    from scripts.benchmark import engine_bench

    long_text = prompts.system_prompt_for(settings["model"], settings["pp_tokens"])
    spec = engine_bench.make_spec(
        settings["model"], settings["n_ctx"], settings["n_batch"], settings["n_threads"],
        max(CLIENTS),
    )  # fmt: skip
    loading = time.perf_counter()
    pool, engine = await engine_bench.acquire(spec)
    result: dict[str, Any] = {
        "load_s": time.perf_counter() - loading,
        "extra_buffers": extra_buffers.decision().allowed,
        "pp": {},
        "decode": {},
    }
    try:
        await engine_bench.run_clients(engine, prompts.warmup(max(CLIENTS)), 4)
        number = 0  # every prompt new: nothing comes from the prefix cache
        for clients in CLIENTS:
            texts = [f"Request {number + i}.\n{long_text}" for i in range(clients)]
            number += clients
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(engine_bench.one_request(engine, text, 1) for text in texts)
            )
            wall = time.perf_counter() - started
            result["pp"][str(clients)] = (
                sum(a.prompt_tokens - a.cached_tokens for a in answers) / wall
            )
        for clients in CLIENTS:
            (round_prompts,) = prompts.rounds([clients], 1)
            round_prompts = [f"Run {number}. {text}" for text in round_prompts]
            number += clients
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    engine_bench.one_request(engine, text, settings["decode_tokens"])
                    for text in round_prompts
                )
            )
            decoding = time.perf_counter() - started - max(a.ttft_s for a in answers)
            tokens = sum(a.completion_tokens - 1 for a in answers)
            result["decode"][str(clients)] = tokens / decoding if decoding > 0 else 0.0
        return result
    finally:
        await pool.close()


def compare(settings: dict[str, Any], repetitions: int, say: Any) -> dict[str, Any]:
    """Run both modes `repetitions` times, alternating; medians per figure."""
    from scripts.benchmark.run import run_job_process

    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for repetition in range(repetitions):
        for mode, value in MODES.items():
            say(f"extra buffers, {mode}, repetition {repetition + 1} of {repetitions} …")
            env = {"MODEL_COMPOSE_EXTRA_BUFFERS": value} if value else {}
            runs[mode].append(run_job_process("buffers", settings, settings["timeout_s"], env))
    summary: dict[str, Any] = {"settings": settings, "runs": runs, "median": {}}
    for mode, done in runs.items():
        summary["median"][mode] = {
            "extra_buffers": done[0]["extra_buffers"],
            "load_s": statistics.median(r["load_s"] for r in done),
            **{
                f"{kind}_{clients}": statistics.median(r[kind][str(clients)] for r in done)
                for kind in ("pp", "decode")
                for clients in CLIENTS
            },
        }
    return summary


def markdown(summary: dict[str, Any], model_name: str) -> str:
    build, fallback = summary["median"]["build"], summary["median"]["fallback"]
    lines = [
        f"| {model_name} | build (extra buffers) | fallback (none) | build ÷ fallback |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind, label in (("pp", "prompt processing"), ("decode", "decode")):
        for clients in CLIENTS:
            key = f"{kind}_{clients}"
            ratio = build[key] / fallback[key] if fallback[key] else float("nan")
            lines.append(
                f"| {label}, {clients} client{'s' if clients > 1 else ''} (tok/s) "
                f"| {build[key]:.1f} | {fallback[key]:.1f} | {ratio:.2f}× |"
            )
    lines.append(f"| load (s) | {build['load_s']:.1f} | {fallback['load_s']:.1f} | |")
    return "\n".join(lines)
