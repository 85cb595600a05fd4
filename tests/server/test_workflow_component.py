"""A workflow component running a workflow of the same file, end to end on
the embedded model: its run, its events (the sub-workflow's deltas), its
schema, and no trace of it where models are listed."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.server.composes import RELAY, sse_events

Client = Callable[..., TestClient]
EVENTS = {"accept": "text/event-stream"}


def test_the_front_workflow_answers_what_the_local_workflow_writes(
    client_for: Client,
) -> None:
    client = client_for(RELAY)
    direct = client.post(
        "/api/workflows/write/runs", json={"input": {"prompt": "Once upon a time"}}
    ).json()
    assert direct["status"] == "completed"
    relayed = client.post("/api/workflows/runs", json={"input": {"text": "Once upon a time"}})
    assert relayed.status_code == 200
    assert relayed.json()["status"] == "completed"
    assert relayed.json()["output"] == direct["output"] != ""
    # The front asks for what its action reads, and streams (`as stream`).
    schema = client.get("/api/workflows/front/schema").json()
    assert [(f["name"], f["required"]) for f in schema["input"]] == [("text", True)]
    missing = client.post("/api/workflows/runs", json={"input": {}})
    assert missing.status_code == 400
    assert "text" in missing.json()["error"]["message"]
    # A workflow component has no model: /v1 serves only the writer.
    models = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert "relay" not in models
    assert "writer" in models
    loaded = client.get("/api/models").json()["models"]
    assert [m["components"] for m in loaded] == [["writer"]]


def test_the_local_workflows_deltas_stream_through_the_front(client_for: Client) -> None:
    client = client_for(RELAY)
    plain = client.post("/api/workflows/runs", json={"input": {"text": "The sea is"}}).json()
    response = client.post(
        "/api/workflows/runs", json={"input": {"text": "The sea is"}}, headers=EVENTS
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    *deltas, done = sse_events(response.text)
    assert deltas and all(d["type"] == "delta" for d in deltas)
    assert done["type"] == "done"
    assert done["workflow_id"] == "front"
    assert "".join(d["text"] for d in deltas) == done["output"] == plain["output"]
    assert done["usage"]["completion_tokens"] == 8
