"""Our engine through the real server: `model-compose up` in a subprocess on a
free loopback port, driven by N concurrent streaming clients of
`/v1/completions` (stream: true, temperature 0, usage in the last chunk)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from scripts.benchmark.stats import RunRecord, peak_rss_bytes, rss_bytes

COMPONENT = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


class Server:
    """`model-compose up` on a compose file in a temporary folder."""

    def __init__(self, settings: dict[str, Any], startup_timeout: float = 300.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._folder = tempfile.TemporaryDirectory(prefix="bench-server-")
        path = Path(self._folder.name) / "model-compose.yml"
        path.write_text(compose_file(settings, self.port))
        self._log = open(Path(self._folder.name) / "server.log", "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "up", "-f", str(path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        self._wait_ready(startup_timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"model-compose up exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"model-compose up was not ready after {timeout:.0f}s:\n{self.log()}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def memory(self) -> dict[str, int]:
        return {
            "rss_bytes": rss_bytes(self.process.pid),
            "peak_rss_bytes": peak_rss_bytes(self.process.pid),
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self._folder.cleanup()


async def stream_completion(
    client: httpx.AsyncClient, prompt: str, max_tokens: int
) -> tuple[float, int, str]:
    """One streaming completion: (seconds to first text, completion tokens
    from the final usage, finish reason)."""
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
    server = Server(settings)
    try:
        records = asyncio.run(asyncio.wait_for(rounds(server.url, settings), settings["timeout_s"]))
        return {
            "records": [r.to_json() for r in records],
            "endpoint": "/v1/completions",
            **server.memory(),
        }
    except TimeoutError:
        raise RuntimeError(
            f"the server measurement did not finish in {settings['timeout_s']:.0f}s"
        ) from None
    finally:
        server.stop()


async def rounds(url: str, settings: dict[str, Any]) -> list[RunRecord]:
    """A warm-up with every slot, then each client count once per repetition."""
    from scripts.benchmark import prompts

    await run_clients(url, prompts.warmup(max(settings["clients"])), 4)
    return [
        await run_clients(url, round_prompts, settings["max_tokens"])
        for round_prompts in prompts.rounds(settings["clients"], settings["repetitions"])
    ]
