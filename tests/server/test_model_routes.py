"""`GET /api/models`: each loaded model once, with the components sharing it
and how busy it is; a running task shows up as a busy slot, and the server is
idle again once the task is cancelled. Each model says what it holds in
memory, and the process its resident set."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.composes import run_body, writer_compose

Client = Callable[..., TestClient]


def status_until(client: TestClient, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body = client.get("/api/models").json()
        if check(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def test_each_loaded_model_is_listed_once_with_the_components_that_share_it(
    client_for: Client,
) -> None:
    status = client_for(writer_compose(tiny=True)).get("/api/models")
    assert status.status_code == 200
    models = sorted(status.json()["models"], key=lambda m: m["context_length"])
    assert [m["components"] for m in models] == [["tiny"], ["writer", "streamer"]]
    for model in models:
        assert model["name"] and model["path"].endswith(".gguf")
        assert (model["slots"], model["busy"], model["waiting"]) == (4, 0, 0)
        # Neither file recommends sampling settings: the global defaults.
        assert model["sampling"] == {
            "temperature": 0.8,
            "top_p": 0.95,
            "top_k": 40,
            "min_p": 0.05,
            "repeat_penalty": 1.0,
        }
    assert models[0]["context_length"] == 64
    assert status.json()["running_tasks"] == 0


def test_a_running_task_holds_a_slot_until_it_is_cancelled(client_for: Client) -> None:
    client = client_for(writer_compose())
    # Asks for far more tokens than it gets time for: it runs until cancelled.
    task = client.post(
        "/api/workflows/runs", json=run_body(max_tokens=2000, wait_for_completion=False)
    )
    busy = status_until(client, lambda body: body["models"][0]["busy"] == 1)
    assert busy["models"][0]["busy"] == 1 and busy["running_tasks"] == 1

    client.post(f"/api/tasks/{task.json()['task_id']}/cancel")
    idle = status_until(client, lambda body: body["models"][0]["busy"] == 0)
    assert (idle["models"][0]["busy"], idle["models"][0]["waiting"]) == (0, 0)
    assert idle["running_tasks"] == 0


def test_the_models_route_needs_the_api_key(client_for: Client) -> None:
    client = client_for(writer_compose(api_key="secret"))
    assert client.get("/api/models").status_code == 401
    allowed = client.get("/api/models", headers={"Authorization": "Bearer secret"})
    assert allowed.status_code == 200 and len(allowed.json()["models"]) == 1


def test_each_model_reports_what_it_holds_in_memory_and_the_process_its_rss(
    client_for: Client,
) -> None:
    client = client_for(writer_compose())
    idle = client.get("/api/models").json()
    (model,) = idle["models"]
    memory = model["memory"]
    # What llama.cpp allocated for the embedded model (Q4_1, 30 layers, 3 KV
    # heads of 64): weights resident once; 4 slots of 4096 cells of K and V.
    cell = 30 * 2 * 3 * 64 * 2  # bytes: one token's K and V, every layer, f16
    assert memory["weights"] == pytest.approx(96_576_768, rel=0.01)
    assert (memory["weights_on_device"], memory["kv_cache_type"]) == (0, "f16")
    assert memory["kv_cache"] == 4 * 4096 * cell
    assert memory["kv_cache_used"] == 0
    assert 0 < memory["compute"] < 50_000_000
    resident = idle["process_memory"]
    assert resident["rss"] >= resident["rss_anon"] + resident["rss_file"]
    assert resident["peak_rss"] >= resident["rss"] > 0

    client.post("/api/workflows/runs", json=run_body(max_tokens=8))
    held = client.get("/api/models").json()["models"][0]["memory"]["kv_cache_used"]
    # The prompt and the answer stay in the slot for prefix reuse: whole cells.
    assert held % cell == 0 and 8 * cell <= held < 64 * cell
