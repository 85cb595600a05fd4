"""The model-compose API routes (COMPAT §3) under the adapter's base_path."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from runtime.errors import ModelLoadError
from runtime.tasks.components import ModelComponents
from tests.server.composes import poll, run_body, writer_compose

Client = Callable[..., TestClient]


def test_a_run_returns_the_task_with_its_output(client_for: Client) -> None:
    response = client_for(writer_compose()).post("/api/workflows/runs", json=run_body())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"task_id", "status", "workflow_id", "output"}
    assert body["status"] == "completed"
    assert body["workflow_id"] == "write"
    assert body["output"].startswith("Once upon a time")


def test_a_run_names_its_workflow_in_the_body_or_in_the_path(client_for: Client) -> None:
    client = client_for(writer_compose())
    by_body = client.post("/api/workflows/runs", json=run_body(workflow_id="stream"))
    by_path = client.post("/api/workflows/stream/runs", json=run_body())
    same_in_both = client.post("/api/workflows/stream/runs", json=run_body(workflow_id="stream"))
    default = client.post("/api/workflows/__default__/runs", json=run_body())
    default_by_name = client.post(
        "/api/workflows/__default__/runs", json=run_body(workflow_id="write")
    )
    assert default_by_name.json()["workflow_id"] == "write"
    assert by_body.json()["workflow_id"] == "stream"
    assert by_path.json()["workflow_id"] == "stream"
    assert same_in_both.json()["workflow_id"] == "stream"
    assert default.json()["workflow_id"] == "write"
    # Greedy: the same prompt gives the same text on every route.
    outputs = {r.json()["output"] for r in (by_body, by_path, same_in_both, default)}
    assert len(outputs) == 1


def test_output_only_returns_the_bare_output(client_for: Client) -> None:
    client = client_for(writer_compose())
    full = client.post("/api/workflows/runs", json=run_body()).json()
    bare = client.post("/api/workflows/runs", json=run_body(output_only=True))
    assert bare.status_code == 200
    assert bare.headers["content-type"] == "application/json"
    assert bare.json() == full["output"]


def test_the_workflows_are_listed_with_their_default(client_for: Client) -> None:
    response = client_for(writer_compose()).get("/api/workflows")
    assert response.json() == [
        {
            "workflow_id": "write",
            "title": "Continue a text",
            "description": "Greedy continuation of a prompt.",
            "default": True,
        },
        {
            "workflow_id": "stream",
            "title": "Streamed continuation",
            "description": None,
            "default": False,
        },
    ]


def test_the_schema_lists_typed_inputs_with_their_defaults(client_for: Client) -> None:
    client = client_for(writer_compose())
    schema = client.get("/api/workflows/write/schema").json()
    assert schema == {
        "workflow_id": "write",
        "title": "Continue a text",
        "description": "Greedy continuation of a prompt.",
        "input": [
            {"name": "prompt", "type": "text", "default": None, "required": True},
            {"name": "max_tokens", "type": "number", "default": 8, "required": False},
            {"name": "temperature", "type": "number", "default": 0, "required": False},
        ],
        "output": [],
    }
    assert client.get("/api/workflows/__default__/schema").json() == schema


def test_the_generation_params_schema_has_number_inputs_with_defaults(client_for: Client) -> None:
    client = client_for("generation-params", health="/health")
    text_input = [
        {"name": "prompt", "type": "text", "default": None, "required": True},
        {"name": "temperature", "type": "number", "default": 0.7, "required": False},
        {"name": "top_p", "type": "number", "default": 0.9, "required": False},
    ]
    assert client.get("/workflows/text/schema").json() == {
        "workflow_id": "text",
        "title": "Text with generation parameters",
        "description": None,
        "input": text_input,
        "output": [],
    }
    chat = client.get("/workflows/chat/schema").json()
    assert chat["input"] == [
        # The whole content of a system message: left out, the message is dropped.
        {"name": "system_prompt", "type": "text", "default": None, "required": False},
        {"name": "user_prompt", "type": "text", "default": None, "required": True},
        {"name": "temperature", "type": "number", "default": 0.7, "required": False},
    ]


def test_a_role_based_schema_asks_only_for_its_own_input(client_for: Client) -> None:
    client = client_for("role-based", health="/health")
    support = client.get("/workflows/customer-support/schema").json()
    reviewer = client.get("/workflows/code-reviewer/schema").json()
    assert support == {
        "workflow_id": "customer-support",
        "title": "Customer support",
        "description": None,
        "input": [{"name": "customer_question", "type": "text", "default": None, "required": True}],
        "output": [],
    }
    assert reviewer["input"] == [
        {"name": "code_to_review", "type": "text", "default": None, "required": True}
    ]


def test_the_quickstart_schema_names_its_output_field(client_for: Client) -> None:
    schema = client_for("quickstart").get("/api/workflows/__default__/schema").json()
    assert schema["title"] == "Generate Chat Messages"
    assert [i["name"] for i in schema["input"]] == ["system_prompt", "user_prompt"]
    assert schema["output"] == [{"name": "generated", "type": "text"}]


def test_a_run_that_does_not_wait_returns_at_once_and_is_polled_to_completion(
    client_for: Client,
) -> None:
    client = client_for(writer_compose())
    started = client.post("/api/workflows/runs", json=run_body(wait_for_completion=False))
    assert started.status_code == 200
    body = started.json()
    assert body["status"] in ("pending", "processing")
    assert "output" not in body
    finished = poll(client, body["task_id"], lambda t: t["status"] == "completed")
    assert finished["status"] == "completed"
    assert finished["task_id"] == body["task_id"]
    assert finished["output"].startswith("Once upon a time")


def test_a_running_task_can_be_cancelled(client_for: Client) -> None:
    client = client_for(writer_compose())
    task = client.post(
        "/api/workflows/runs", json=run_body(max_tokens=1000, wait_for_completion=False)
    ).json()
    poll(client, task["task_id"], lambda t: t["status"] == "processing")
    cancelled = client.post(f"/api/tasks/{task['task_id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json() == {
        "task_id": task["task_id"],
        "status": "cancelled",
        "workflow_id": "write",
    }
    assert client.get(f"/api/tasks/{task['task_id']}").json()["status"] == "cancelled"
    # The model is free again: a short run finishes.
    assert client.post("/api/workflows/runs", json=run_body()).json()["status"] == "completed"


def test_cancelling_a_finished_task_leaves_it_as_it_was(client_for: Client) -> None:
    client = client_for(writer_compose())
    done = client.post("/api/workflows/runs", json=run_body()).json()
    assert client.post(f"/api/tasks/{done['task_id']}/cancel").json() == done


def test_health_is_ok_under_the_base_path_and_at_the_root(client_for: Client) -> None:
    client = client_for(writer_compose())
    for path in ("/api/health", "/health"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


@pytest.fixture
def blocked_load(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Model loading waits until the returned event is set."""
    release = threading.Event()
    preload = ModelComponents.preload

    async def slow_preload(self: ModelComponents) -> None:
        import asyncio

        while not release.is_set():
            await asyncio.sleep(0.01)
        await preload(self)

    monkeypatch.setattr(ModelComponents, "preload", slow_preload)
    return release


def test_health_is_503_until_the_models_are_loaded(
    client_for: Client, blocked_load: threading.Event
) -> None:
    client = client_for(writer_compose(), ready=False)
    for path in ("/api/health", "/health"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.json() == {"status": "starting"}
        assert response.headers["retry-after"] == "1"
    run = client.post("/api/workflows/runs", json=run_body())
    assert run.status_code == 503
    assert run.headers["retry-after"] == "1"
    assert run.json() == {
        "error": {
            "type": "unavailable",
            "message": "the server is still loading its models; retry shortly",
        }
    }
    # What does not need a model answers already.
    assert client.get("/api/workflows").status_code == 200
    blocked_load.set()
    deadline = time.monotonic() + 30
    while client.get("/api/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/api/health").json() == {"status": "ok"}
    assert client.post("/api/workflows/runs", json=run_body()).status_code == 200


def test_health_reports_a_model_that_failed_to_load(
    client_for: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_preload(self: ModelComponents) -> None:
        raise ModelLoadError("cannot read model.gguf: not a GGUF file")

    monkeypatch.setattr(ModelComponents, "preload", failing_preload)
    client = client_for(writer_compose(), ready=False)
    deadline = time.monotonic() + 10
    while client.get("/api/health").json()["status"] == "starting":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    health = client.get("/api/health")
    assert health.status_code == 503
    assert health.json() == {
        "status": "failed",
        "error": {"type": "model_error", "message": "cannot read model.gguf: not a GGUF file"},
    }
    run = client.post("/api/workflows/runs", json=run_body())
    assert run.status_code == 503
    assert run.json() == {
        "error": {
            "type": "unavailable",
            "message": "the server failed to start: cannot read model.gguf: not a GGUF file",
        }
    }
