"""Streaming runs as Server-Sent Events: one JSON event per delta, then a
`done` or `error` event; slow readers lose nothing, gone readers cancel."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from runtime.server import run_stream
from tests.server.composes import LONG_PROMPT, run_body, sse_events, writer_compose
from tests.server.conftest import LiveServer

Client = Callable[..., TestClient]
EVENTS = {"accept": "text/event-stream"}


def check_stream(events: list[dict[str, Any]], workflow_id: str) -> dict[str, Any]:
    """The deltas and the final event agree; returns the final event."""
    *deltas, done = events
    assert deltas, "no delta before the end"
    task_id = done["task_id"]
    for delta in deltas:
        assert set(delta) == {"type", "task_id", "job_id", "text"}
        assert delta["type"] == "delta"
        assert delta["task_id"] == task_id
        assert delta["text"]
    assert done["type"] == "done"
    assert done["status"] == "completed"
    assert done["workflow_id"] == workflow_id
    assert "".join(d["text"] for d in deltas) == done["output"]
    return done


def test_a_client_that_accepts_events_gets_deltas_then_a_done_event(client_for: Client) -> None:
    client = client_for(writer_compose())
    response = client.post("/api/workflows/runs", json=run_body(), headers=EVENTS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    done = check_stream(sse_events(response.text), "write")
    assert set(done) == {
        "type",
        "task_id",
        "status",
        "workflow_id",
        "output",
        "finish_reason",
        "usage",
    }
    assert done["output"].startswith("Once upon a time")
    assert done["finish_reason"] == "length"
    usage = done["usage"]
    assert set(usage) == {
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "total_tokens",
    }
    assert usage["completion_tokens"] == 8
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # The task is kept like any other, with the same output.
    task = client.get(f"/api/tasks/{done['task_id']}").json()
    assert task == {k: done[k] for k in ("task_id", "status", "workflow_id", "output")}


def test_the_streamed_text_is_the_text_of_a_plain_run(client_for: Client) -> None:
    client = client_for(writer_compose())
    plain = client.post("/api/workflows/runs", json=run_body(max_tokens=24)).json()
    streamed = client.post("/api/workflows/runs", json=run_body(max_tokens=24), headers=EVENTS)
    assert check_stream(sse_events(streamed.text), "write")["output"] == plain["output"]


def test_output_only_on_a_streaming_workflow_streams(client_for: Client) -> None:
    client = client_for(writer_compose())
    response = client.post("/api/workflows/stream/runs", json=run_body(output_only=True))
    assert response.headers["content-type"].startswith("text/event-stream")
    check_stream(sse_events(response.text), "stream")
    # Without output_only or Accept, the streaming workflow answers JSON.
    plain = client.post("/api/workflows/stream/runs", json=run_body())
    assert plain.json()["status"] == "completed"


def test_a_prompt_longer_than_the_context_is_a_400_before_the_stream_starts(
    client_for: Client,
) -> None:
    client = client_for(writer_compose(tiny=True))
    response = client.post(
        "/api/workflows/tiny/runs", json={"input": {"prompt": LONG_PROMPT}}, headers=EVENTS
    )
    assert response.status_code == 400  # as for a client that waits for the run
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"task_id", "status", "workflow_id", "error"}
    assert (body["status"], body["workflow_id"]) == ("failed", "tiny")
    assert body["error"]["type"] == "context_length_exceeded"
    assert re.fullmatch(
        r"the prompt is \d+ tokens long, but the model's context holds 64 tokens",
        body["error"]["message"],
    )
    assert client.get(f"/api/tasks/{body['task_id']}").json()["status"] == "failed"


def test_a_request_error_is_json_even_when_events_were_asked_for(client_for: Client) -> None:
    client = client_for(writer_compose())
    unknown = client.post("/api/workflows/nope/runs", json=run_body(), headers=EVENTS)
    missing = client.post("/api/workflows/runs", json={"input": {}}, headers=EVENTS)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found"
    assert missing.status_code == 400
    assert missing.json() == {
        "error": {"type": "invalid_input", "message": "missing required input 'prompt'"}
    }


def read_events(response: httpx.Response) -> Any:
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line.removeprefix("data: "))


def test_a_slow_reader_loses_no_delta(live_server: Callable[..., LiveServer]) -> None:
    server = live_server(writer_compose())
    body = run_body(max_tokens=120)
    with httpx.stream(
        "POST", f"{server.url}/api/workflows/runs", json=body, headers=EVENTS, timeout=60
    ) as response:
        time.sleep(0.5)  # let the run get well ahead of the reader
        events = []
        for event in read_events(response):
            events.append(event)
            time.sleep(0.005)
    done = check_stream(events, "write")
    assert done["usage"]["completion_tokens"] == 120
    plain = httpx.post(f"{server.url}/api/workflows/runs", json=body, timeout=60).json()
    assert done["output"] == plain["output"]


def test_a_client_that_disconnects_mid_stream_cancels_its_run(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(writer_compose())
    with httpx.stream(
        "POST",
        f"{server.url}/api/workflows/runs",
        json=run_body(max_tokens=1000),
        headers=EVENTS,
        timeout=60,
    ) as response:
        events = read_events(response)
        first, second = next(events), next(events)
    assert first["type"] == second["type"] == "delta"
    task_url = f"{server.url}/api/tasks/{first['task_id']}"
    deadline = time.monotonic() + 5
    while httpx.get(task_url).json()["status"] != "cancelled":
        assert time.monotonic() < deadline, httpx.get(task_url).text
        time.sleep(0.02)
    assert server.app.state.service.tasks.running() == []
    after = httpx.post(f"{server.url}/api/workflows/runs", json=run_body(), timeout=60)
    assert after.json()["status"] == "completed"


def test_a_bug_while_streaming_ends_the_stream_with_an_error_event(
    client_for: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(writer_compose())

    def broken(task: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(run_stream, "final_event", broken)
    response = client.post("/api/workflows/runs", json=run_body(), headers=EVENTS)
    *deltas, last = sse_events(response.text)
    assert deltas
    assert last == {
        "type": "error",
        "task_id": deltas[0]["task_id"],
        "workflow_id": "write",
        "error": {
            "type": "internal_error",
            "message": "the server failed on this request (see its log)",
        },
    }
    assert "secret" not in response.text
