"""`scripts/bench --queue`: what model-compose's Redis queue costs a run.

The same workflow on the same model, served two ways on this machine, in
alternating rounds: `direct` (`model-compose up` on the file) and `queue`
(a front controller with no model, one queue worker, a real redis-server
on loopback). Both answer through the model-compose API as Server-Sent
Events (the done event carries the usage), in two shapes: `plain` (the
workflow's output is its answer) and `streamed` (its output is `as
stream/text`: every token crosses Redis as a stream entry). Measured:
- total completion tokens/s with `clients` concurrent clients;
- a short run's latency, one client at a time: the queue's added
  latency is p50(queue) − p50(direct).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from scripts.benchmark import prompts
from scripts.benchmark.redis_server import MISSING, RedisServer
from scripts.benchmark.redis_server import available as redis_available
from scripts.benchmark.server_process import ServerProcess, model_compose_up
from scripts.benchmark.stats import percentile

Say = Callable[[str], None]
SHAPES = {"plain": "${output}", "streamed": "${output as stream/text}"}


def workflow(model: str, output: str, settings: dict[str, Any]) -> str:
    return f"""
workflow:
  id: chat
  job:
    component: chat
    output: {output}
component:
  id: chat
  type: model
  task: chat-completion
  model: {{provider: local, path: {json.dumps(model)}}}
  context_length: {settings["n_ctx"]}
  parallel: {settings["parallel"]}
  n_threads: {settings["n_threads"]}
  max_queue: 1000
  action:
    messages:
      - role: user
        content: ${{input.prompt}}
    max_output_length: ${{input.max_tokens as integer}}
    params:
      temperature: 0
"""


def servers(model: str, output: str, settings: dict[str, Any], redis_port: int) -> dict[str, Any]:
    body = workflow(model, output, settings)
    queue = f"driver: redis\n    host: 127.0.0.1\n    port: {redis_port}\n    name: bench"
    direct = ServerProcess(
        model_compose_up(
            lambda port: f"controller:\n  adapter:\n    port: {port}\n    base_path: /api\n{body}"
        ),
        health_path="/api/health",
    )
    # The worker has no HTTP API: its metrics port says it is up.
    worker = ServerProcess(
        model_compose_up(
            lambda port: (
                "controller:\n  adapter:\n    type: queue-subscriber\n    "
                f"{queue}\n    metrics_port: {port}\n{body}"
            )
        ),
        health_path="/metrics",
        name="queue worker",
    )
    front = ServerProcess(
        model_compose_up(
            lambda port: (
                f"controller:\n  adapter:\n    port: {port}\n    base_path: /api\n"
                f"  queue:\n    {queue}\n    max_queue: 1000\n"
                "workflow:\n  id: local\n  job: {component: local}\ncomponent:\n  id: local\n"
                "  type: model\n  task: chat-completion\n  model: {provider: local, path: "
                f"{json.dumps(model)}}}\n  preload: false\n"
                "  action: {messages: [{role: user, content: '${input.prompt}'}]}\n"
            )
        ),
        health_path="/api/health",
        name="queue front",
    )
    return {"direct": direct, "queue": front, "_worker": worker}


async def one_run(
    client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int
) -> tuple[float, int]:
    """Seconds until the done event, and the run's completion tokens."""
    began = time.perf_counter()
    body = {"workflow_id": "chat", "input": {"prompt": prompt, "max_tokens": max_tokens}}
    async with client.stream(
        "POST", f"{url}/api/workflows/runs", json=body, headers={"accept": "text/event-stream"}
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "done":
                    if event["status"] != "completed":
                        raise RuntimeError(f"run failed: {event}")
                    return time.perf_counter() - began, int(event["usage"]["completion_tokens"])
    raise RuntimeError("no done event")


async def throughput(url: str, clients: int, runs: list[str], max_tokens: int) -> float:
    async with httpx.AsyncClient(timeout=600) as client:
        pending = list(runs)
        tokens = 0

        async def worker() -> None:
            nonlocal tokens
            while pending:
                _, count = await one_run(client, url, pending.pop(), max_tokens)
                tokens += count

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return tokens / (time.perf_counter() - began)


async def latencies(url: str, count: int, max_tokens: int) -> list[float]:
    async with httpx.AsyncClient(timeout=600) as client:
        await one_run(client, url, "Say hi", max_tokens)  # warm
        return [(await one_run(client, url, "Say hi", max_tokens))[0] for _ in range(count)]


def measure(settings: dict[str, Any], say: Say) -> dict[str, Any]:
    clients = max(settings["clients"])
    rounds = settings["repetitions"]
    if not redis_available():
        raise SystemExit(f"scripts/bench --queue: {MISSING}")
    redis_server = RedisServer().start()
    results: dict[str, Any] = {
        "clients": clients,
        "max_tokens": settings["max_tokens"],
        "rounds": rounds,
        "latency_runs": 30 if rounds > 1 else 5,
    }
    try:
        for shape, output in SHAPES.items():
            say(f"queue cost, {shape}: starting a direct server, a queue worker and a front")
            running = servers(settings["model"], output, settings, redis_server.port)
            try:
                rows: dict[str, dict[str, list[float]]] = {
                    way: {"tokens_per_s": [], "latency_s": []} for way in ("direct", "queue")
                }
                for index in range(rounds):
                    texts = prompts.rounds([clients * 4], 1, start=100 * index)[0]
                    for way in ("direct", "queue"):
                        url = running[way].url
                        rate = asyncio.run(throughput(url, clients, texts, settings["max_tokens"]))
                        times = asyncio.run(latencies(url, results["latency_runs"], 4))
                        rows[way]["tokens_per_s"].append(rate)
                        rows[way]["latency_s"].extend(times)
                        say(
                            f"  round {index + 1} {way}: {rate:.1f} tok/s, "
                            f"short run p50 {statistics.median(times) * 1000:.1f} ms"
                        )
                results[shape] = {
                    way: {
                        "rounds_tokens_per_s": row["tokens_per_s"],
                        "tokens_per_s": statistics.median(row["tokens_per_s"]),
                        "latency_p50_ms": percentile(row["latency_s"], 50) * 1000,
                        "latency_p90_ms": percentile(row["latency_s"], 90) * 1000,
                    }
                    for way, row in rows.items()
                }
            finally:
                for process in running.values():
                    process.cleanup()
    finally:
        redis_server.close()
    return results


def markdown(results: dict[str, Any], model_name: str) -> str:
    lines = [
        f"The queue's cost on {model_name}: {results['clients']} clients × "
        f"{results['max_tokens']} tokens for tok/s (median of {results['rounds']} alternating "
        f"rounds); a 4-token run one at a time for latency ({results['latency_runs']} per round).",
        "",
        "| workflow | way | tok/s | vs direct | short run p50 (ms) | p90 (ms) | added p50 (ms) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for shape in SHAPES:
        direct = results[shape]["direct"]
        for way in ("direct", "queue"):
            row = results[shape][way]
            ratio = row["tokens_per_s"] / direct["tokens_per_s"]
            added = row["latency_p50_ms"] - direct["latency_p50_ms"]
            lines.append(
                f"| {shape} | {way} | {row['tokens_per_s']:.1f} | {ratio:.3f} | "
                f"{row['latency_p50_ms']:.1f} | {row['latency_p90_ms']:.1f} | "
                f"{'' if way == 'direct' else f'{added:+.1f}'} |"
            )
    plain = results["plain"]
    ratio = plain["queue"]["tokens_per_s"] / plain["direct"]["tokens_per_s"]
    added = plain["queue"]["latency_p50_ms"] - plain["direct"]["latency_p50_ms"]
    lines += [
        "",
        f"Targets (issue 18): tok/s through the queue within 5% of direct: {ratio:.3f} "
        f"({'met' if ratio >= 0.95 else 'NOT met'}); added latency p50 ≤ 5 ms: {added:+.1f} ms "
        f"({'met' if added <= 5 else 'NOT met'}).",
    ]
    return "\n".join(lines)
