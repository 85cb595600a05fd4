"""`keep_alive`: a model unloaded after that long without requests, reported
as unloaded by /health and /models, and loaded again by the next request,
on the embedded model through the real pool and engine."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime.engine.batched import BatchedEngine
from runtime.engine.pooled_model import IDLE_LOGGER, PooledModel
from runtime.service import Service
from tests.server.composes import MODEL, run_body

Client = Callable[..., TestClient]

WRITER = """
controller:
  base_path: /api
workflow:
  id: write
  job:
    component: writer
component:
  id: writer
  type: model
  task: text-generation
  model: {model}
  context_length: 512
  {keep_alive}
  text: ${{input.prompt as text}}
  max_output_length: ${{input.max_tokens as number | 8}}
  params:
    do_sample: false
"""


def writer(keep_alive: str | None) -> str:
    line = f"keep_alive: {keep_alive}" if keep_alive is not None else ""
    return WRITER.format(model=MODEL, keep_alive=line)


def pooled(client: TestClient) -> PooledModel:
    service: Service = client.app.state.service  # type: ignore[attr-defined]
    model = service.components.pooled("writer")
    assert model is not None
    return model


def until(check: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


def models(client: TestClient) -> list[dict[str, Any]]:
    return client.get("/api/models").json()["models"]


def write(client: TestClient, **body: Any) -> str:
    task = client.post("/api/workflows/runs", json=run_body(**body)).json()
    assert task["status"] == "completed", task
    return str(task["output"])


def test_an_idle_model_is_unloaded_reported_and_loaded_again_by_the_next_request(
    client_for: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=IDLE_LOGGER)
    client = client_for(writer("1s"))
    first = write(client)
    engine = pooled(client).engine
    assert isinstance(engine, BatchedEngine)

    until(lambda: pooled(client).engine is None, seconds=5)
    assert engine.scheduler.is_closed  # closed, its memory freed
    assert client.get("/api/health").json() == {"status": "ok", "models": {"writer": "unloaded"}}
    assert client.get("/health").json()["models"] == {"writer": "unloaded"}
    [listed] = models(client)
    assert listed["state"] == "unloaded" and listed["components"] == ["writer"]
    assert (listed["busy"], listed["waiting"], listed["slots"]) == (0, 0, 4)
    assert listed["name"] and listed["context_length"] == 512

    assert write(client) == first  # the same greedy answer: the model is back
    reloaded = pooled(client).engine
    assert reloaded is not None and reloaded is not engine
    assert client.get("/api/health").json() == {"status": "ok"}
    assert models(client)[0]["state"] == "loaded"
    assert caplog.messages == [
        "unloading model SmolLM2-135M-Instruct.Q4_1.gguf after 1s idle",
        "loading model SmolLM2-135M-Instruct.Q4_1.gguf again (unloaded after 1s idle)",
    ]


def test_a_request_in_flight_keeps_the_model_loaded_and_the_clock_starts_when_it_ends(
    client_for: Client,
) -> None:
    client = client_for(writer("0.5s"))
    # Far more tokens than it gets time for: it runs until cancelled.
    task = client.post(
        "/api/workflows/runs", json=run_body(max_tokens=2000, wait_for_completion=False)
    ).json()
    until(lambda: models(client)[0]["busy"] == 1)
    time.sleep(1.0)  # twice the keep_alive
    assert models(client)[0]["state"] == "loaded" and models(client)[0]["busy"] == 1
    client.post(f"/api/tasks/{task['task_id']}/cancel")
    ended = time.monotonic()
    until(lambda: models(client)[0]["state"] == "unloaded", seconds=5)
    assert time.monotonic() - ended >= 0.4  # counted from the end of the request


def test_without_keep_alive_a_model_stays_loaded(client_for: Client) -> None:
    client = client_for(writer(None))
    write(client)
    engine = pooled(client).engine
    assert pooled(client).keep_alive is None
    time.sleep(1.0)
    assert pooled(client).engine is engine
    assert client.get("/api/health").json() == {"status": "ok"}
    assert models(client)[0]["state"] == "loaded"


def test_a_request_arriving_while_the_model_unloads_waits_for_it_then_loads_it_again(
    client_for: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    closing: list[BatchedEngine] = []
    close = BatchedEngine.close

    async def slow_close(self: BatchedEngine) -> None:
        closing.append(self)
        await asyncio.sleep(0.5)  # the next request arrives while this unload runs
        await close(self)

    monkeypatch.setattr(BatchedEngine, "close", slow_close)
    # 0: unloaded as soon as it is idle (after the preload, after each request).
    client = client_for(writer("0"))
    first = write(client)
    unloading = until(lambda: closing and not closing[-1].scheduler.is_closed and closing[-1])
    # Through /v1 this time: its generations hold the model the same way.
    reply = client.post(
        "/v1/completions",
        json={"model": "writer", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0},
    )
    assert reply.status_code == 200, reply.text
    assert first == "Once upon a time" + reply.json()["choices"][0]["text"]
    assert unloading.scheduler.is_closed and pooled(client).engine is not unloading
