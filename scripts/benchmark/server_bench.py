"""Our engine through the real server: `model-compose up` in a subprocess on a
free loopback port, driven by N concurrent streaming clients of
`/v1/completions` (stream: true, temperature 0, usage in the last chunk).
The same clients drive llama.cpp's llama-server (llama_server.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from scripts.benchmark.server_process import ServerProcess, model_compose_up
from scripts.benchmark.stats import RunRecord

COMPONENT = "bench"


def component_fields() -> set[str]:
    from runtime.config.schema import ModelComponent

    return set(ModelComponent.__struct_fields__)


def compose_file(settings: dict[str, Any], port: int) -> str:
    """A compose file serving the model as one text-generation component."""
    knobs = {
        "n_ctx": settings["n_ctx"],
        "n_batch": settings["n_batch"],
        "n_threads": settings["n_threads"],
        "device": "cpu",
    }
    fields = component_fields()
    if "parallel" in fields:
        knobs["parallel"] = settings["parallel"]
    if "max_queue" in fields:
        knobs["max_queue"] = max(64, settings["parallel"])
    lines = [
        "controller:",
        "  adapter:",
        "    type: http-server",
        "    host: 127.0.0.1",
        f"    port: {port}",
        "    base_path: /api",
        "component:",
        f"  id: {COMPONENT}",
        "  type: model",
        "  task: text-generation",
        f"  model: {json.dumps(settings['model'])}",
        *(f"  {key}: {value}" for key, value in knobs.items()),
        "  action:",
        "    prompt: ${input.prompt}",
        f"    max_output_length: {settings['max_tokens']}",
        "    params:",
        "      do_sample: false",
    ]
    return "\n".join(lines) + "\n"


async def stream_completion(
    client: httpx.AsyncClient, prompt: str, max_tokens: int
) -> tuple[float, int, str]:
    """One streaming completion: (seconds to first text, completion tokens
    from the final usage, finish reason). llama-server's last chunk of a
    streamed /v1/completions (the one with the finish reason) carries `usage`
    whatever `stream_options` says, and `timings` too; ours sends `usage` in
    a chunk of its own. Either way the count is the server's, not ours."""
    body = {
        "model": COMPONENT,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    tokens, finish = 0, ""
    async with client.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(
                f"/v1/completions answered {response.status_code}: {response.text[:500]}"
            )
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            for choice in chunk.get("choices") or []:
                if first is None and choice.get("text"):
                    first = time.perf_counter()
                finish = choice.get("finish_reason") or finish
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    return (first or end) - started, tokens, finish


async def run_clients(url: str, prompts: list[str], max_tokens: int) -> RunRecord:
    """One concurrent streaming client per prompt, all sent together."""
    limits = httpx.Limits(max_connections=len(prompts) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as client:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(stream_completion(client, prompt, max_tokens) for prompt in prompts)
        )
        finished = time.perf_counter()
    return RunRecord(
        clients=len(prompts),
        wall_s=finished - started,
        ttft_s=[ttft for ttft, _, _ in results],
        completion_tokens=[tokens for _, tokens, _ in results],
        finish_reasons=[reason for _, _, reason in results],
    )


def server_job(settings: dict[str, Any]) -> dict[str, Any]:
    server = ServerProcess(model_compose_up(lambda port: compose_file(settings, port)))
    return measure(server, settings)


def measure(server: ServerProcess, settings: dict[str, Any]) -> dict[str, Any]:
    """The rounds against a started server, then its RSS; stops it."""
    try:
        records = asyncio.run(asyncio.wait_for(rounds(server.url, settings), settings["timeout_s"]))
        return {
            "records": [r.to_json() for r in records],
            "endpoint": "/v1/completions",
            **server.memory(),
        }
    except TimeoutError:
        raise RuntimeError(
            f"the {server.name} measurement did not finish in {settings['timeout_s']:.0f}s"
        ) from None
    finally:
        server.cleanup()


async def rounds(url: str, settings: dict[str, Any]) -> list[RunRecord]:
    """A warm-up with every slot, then each client count once per repetition."""
    from scripts.benchmark import prompts

    await run_clients(url, prompts.warmup(max(settings["clients"])), 4)
    return [
        await run_clients(url, round_prompts, settings["max_tokens"])
        for round_prompts in prompts.rounds(settings["clients"], settings["repetitions"])
    ]
