"""`serve_metrics`: a service's metrics on a small server of their own (a
process without the HTTP API), behind the API key when one is given, with
the gauges other code adds."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import Gauge

from runtime.config import ComposeConfig
from runtime.errors import RuntimeFailure
from runtime.metrics import serve_metrics
from runtime.service import Service
from tests.metrics.scrape import parse, value
from tests.server.composes import writer_compose

KEY = {"Authorization": "Bearer secret"}
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


async def test_a_worker_serves_its_runs_tokens_and_added_gauges_behind_the_key(
    compose: Callable[[str], ComposeConfig], embedded_model_path: Path
) -> None:
    service = Service(compose(writer_compose()))
    await service.start()
    try:
        task = service.start_run(service.prepare("write", {"prompt": "Once", "max_tokens": 4}))
        await task.wait()
        depth = Gauge(
            "model_compose_queue_depth",
            "Runs waiting in the queue.",
            ["queue"],
            registry=service.metrics.registry,
        )
        depth.labels("default").set(3)
        server = await serve_metrics(service, "127.0.0.1", 0, api_key="secret")
        try:
            assert server.url == f"http://127.0.0.1:{server.port}/metrics"
            async with httpx.AsyncClient() as client:  # the server answers on this loop
                refused = await client.get(server.url)
                assert refused.status_code == 401
                assert refused.json()["error"]["type"] == "unauthorized"
                wrong = await client.get(server.url, headers={"Authorization": "Bearer wrong"})
                assert wrong.status_code == 401
                answered = await client.get(server.url, headers=KEY)
                assert answered.status_code == 200
                samples = parse(answered.text)
        finally:
            await server.close()
    finally:
        await service.stop()
    usage = task.usage
    tokens = {"model": MODEL_FILE, "component": "writer"}
    assert value(samples, "model_compose_workflow_runs_total", workflow="write") == 1
    assert value(samples, "model_compose_prompt_tokens_total", **tokens) == usage.prompt_tokens
    assert value(samples, "model_compose_completion_tokens_total", **tokens) == 4
    assert value(samples, "model_compose_model_state", component="writer", state="loaded") == 1
    assert value(samples, "model_compose_slots_busy", model=MODEL_FILE) == 0
    assert value(samples, "model_compose_queue_depth", queue="default") == 3
    with pytest.raises(httpx.ConnectError):  # closed
        httpx.get(server.url, headers=KEY)


async def test_without_a_key_the_metrics_are_open_and_only_metrics_are_served(
    compose: Callable[[str], ComposeConfig],
) -> None:
    service = Service(compose(writer_compose()))  # never started: nothing loaded
    server = await serve_metrics(service)
    try:
        async with httpx.AsyncClient() as client:
            samples = parse((await client.get(server.url)).text)
            health = await client.get(server.url.removesuffix("/metrics") + "/health")
        assert value(samples, "model_compose_model_state", state="unloaded") == 2
        assert health.status_code == 404
    finally:
        await server.close()
        await server.close()  # idempotent


async def test_a_busy_port_is_a_clear_error(compose: Callable[[str], ComposeConfig]) -> None:
    service = Service(compose(writer_compose()))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeFailure, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve_metrics(service, "127.0.0.1", port)
