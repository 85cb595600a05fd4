"""One measured system in a fresh process, so that its RSS is its own:
`python -m scripts.benchmark.worker JOB SETTINGS_JSON` prints one JSON object.

Jobs: `ceiling`, `serial`, `engine` (throughput, then warm-prefix TTFT, then
the cost of a JSON schema: constrained.py),
`slots` (RSS of our engine with `settings["parallel"]` slots after 4 clients),
`buffers` (prompt processing and decode, see buffers.py), `server` (the
server job, for `--against`: see against.py).
In each job the clients and the model share the process, as an in-process
user of the library would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from scripts.benchmark import prompts
from scripts.benchmark.stats import RunRecord, memory


def run_job(job: str, settings: dict[str, Any]) -> dict[str, Any]:
    from scripts.benchmark import buffers, server_bench

    jobs = {
        "ceiling": ceiling_job,
        "serial": serial_job,
        "engine": engine_job,
        "slots": slots_job,
        "buffers": buffers.job,
        "server": server_bench.server_job,
    }
    return jobs[job](settings)


def _plan(settings: dict[str, Any]) -> list[list[str]]:
    return prompts.rounds(settings["clients"], settings["repetitions"])


def _prompt_lengths(plan: list[list[list[int]]]) -> dict[str, int]:
    lengths = [len(prompt) for round_prompts in plan for prompt in round_prompts]
    return {"min": min(lengths), "max": max(lengths)}


def _memory() -> dict[str, int]:
    return memory()


def ceiling_job(settings: dict[str, Any]) -> dict[str, Any]:
    from scripts.benchmark.ceiling import RawContext, RawModel

    model = RawModel(settings["model"], settings["n_threads"])
    context = None
    try:
        context = RawContext(
            model, settings["n_ctx"], settings["n_batch"], max(settings["clients"])
        )
        context.run([model.encode(p) for p in prompts.warmup(max(settings["clients"]))], 4)
        plan = [[model.encode(p) for p in r] for r in _plan(settings)]
        records = [context.run(round_prompts, settings["max_tokens"]) for round_prompts in plan]
        return {
            "records": [r.to_json() for r in records],
            "prompt_tokens": _prompt_lengths(plan),
            "context": context.settings,
            **_memory(),
        }
    finally:
        if context is not None:
            context.close()
        model.close()


def serial_job(settings: dict[str, Any]) -> dict[str, Any]:
    from scripts.benchmark.serial_baseline import SerialBaseline

    baseline = SerialBaseline(
        settings["model"], settings["n_ctx"], settings["n_batch"], settings["n_threads"]
    )
    try:
        baseline.run([baseline.encode(p) for p in prompts.warmup(1)], 4)
        plan = [[baseline.encode(p) for p in r] for r in _plan(settings)]
        records = [baseline.run(round_prompts, settings["max_tokens"]) for round_prompts in plan]
        return {
            "records": [r.to_json() for r in records],
            "prompt_tokens": _prompt_lengths(plan),
            **_memory(),
        }
    finally:
        baseline.close()


def _engine_spec(settings: dict[str, Any]) -> Any:
    from scripts.benchmark import engine_bench

    return engine_bench.make_spec(
        settings["model"],
        settings["n_ctx"],
        settings["n_batch"],
        settings["n_threads"],
        settings["parallel"],
    )


def engine_job(settings: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_engine_job(settings))


async def _engine_job(settings: dict[str, Any]) -> dict[str, Any]:
    from scripts.benchmark import engine_bench

    spec = _engine_spec(settings)
    pool, engine = await engine_bench.acquire(spec)
    try:
        # Warm-up: every slot once, so that first-use costs stay out of the numbers.
        await engine_bench.run_clients(engine, prompts.warmup(max(settings["clients"])), 4)
        records: list[RunRecord] = [
            await engine_bench.run_clients(engine, round_prompts, settings["max_tokens"])
            for round_prompts in _plan(settings)
        ]
        result: dict[str, Any] = {
            "engine": engine_bench.describe(engine),
            "records": [r.to_json() for r in records],
            **_memory(),
        }
        # Warm prefix, after the RSS reading: the system prompt is new to every slot.
        system = prompts.system_prompt_for(settings["model"], settings["system_prompt_tokens"])
        result["warm_prefix"] = await engine_bench.warm_prefix(
            engine, system, prompts.QUESTIONS, settings["warm_prefix_max_tokens"]
        )
        if settings.get("constrained", True):
            from scripts.benchmark import constrained

            result["constrained"] = await constrained.measure(engine, settings)
        return result
    finally:
        await pool.close()


def slots_job(settings: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_slots_job(settings))


async def _slots_job(settings: dict[str, Any]) -> dict[str, Any]:
    from scripts.benchmark import engine_bench

    spec = _engine_spec(settings)
    pool, engine = await engine_bench.acquire(spec)
    try:
        await engine_bench.run_clients(engine, prompts.warmup(settings["slot_clients"]), 4)
        (round_prompts,) = prompts.rounds([settings["slot_clients"]], 1)
        record = await engine_bench.run_clients(engine, round_prompts, settings["slot_max_tokens"])
        return {
            "engine": engine_bench.describe(engine),
            "parallel": settings["parallel"],
            "record": record.to_json(),
            **_memory(),
        }
    finally:
        await pool.close()


def main() -> None:
    job, settings = sys.argv[1], json.loads(sys.argv[2])
    result = run_job(job, settings)
    # The last line of stdout is the answer (llama.cpp may print before it).
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
