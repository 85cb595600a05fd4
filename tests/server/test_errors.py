"""Every error a client can cause is `{"error": {"type", "message"}}` with a
4xx that says what was wrong; a bug is a 500 without a traceback."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime.server import workflow_routes
from tests.server.composes import LONG_PROMPT, run_body, writer_compose

Client = Callable[..., TestClient]
JSON = {"content-type": "application/json"}


def error(type_: str, message: str) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message}}


@pytest.fixture
def client(client_for: Client) -> TestClient:
    return client_for(writer_compose(tiny=True))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"input": ', "the request body is not valid JSON: Expecting value"),
        (
            b"{bad}",
            "the request body is not valid JSON: Expecting property name enclosed in double quotes",
        ),
        (b"", "the request body is empty; send a JSON object"),
        (b"[1, 2]", "the request body must be a JSON object, got an array"),
        (b'"run"', "the request body must be a JSON object, got a string"),
        (b"null", "the request body must be a JSON object, got null"),
        (b'{"input": {"prompt": "Hi"}, "stream": true}', "stream: unknown field"),
        (b'{"input": "Hi"}', "input: must be a JSON object, got a string"),
        (b'{"input": ["Hi"]}', "input: must be a JSON object, got an array"),
        (
            b'{"input": {"prompt": "Hi"}, "wait_for_completion": "soon"}',
            "wait_for_completion: must be true or false, got a string",
        ),
        # No guessing at types: 0 is not false, 5 is not a workflow id.
        (b'{"output_only": 0}', "output_only: must be true or false, got a number"),
        (b'{"workflow_id": 5}', "workflow_id: must be a string, got a number"),
    ],
)
def test_a_malformed_request_body_is_a_400_that_says_what_is_wrong(
    client: TestClient, body: bytes, message: str
) -> None:
    response = client.post("/api/workflows/runs", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == error("invalid_request", message)


def test_a_body_sent_without_a_json_content_type_is_refused_with_a_hint(
    client: TestClient,
) -> None:
    response = client.post(
        "/api/workflows/runs",
        content=b'{"input": {"prompt": "Hi"}}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json() == error(
        "invalid_request",
        "the request body must be a JSON object sent with 'Content-Type: application/json'",
    )


def test_an_unknown_workflow_is_a_404_naming_the_known_ones(client: TestClient) -> None:
    known = "(known: 'write', 'stream', 'tiny')"
    for response in (
        client.post("/api/workflows/nope/runs", json=run_body()),
        client.post("/api/workflows/runs", json=run_body(workflow_id="nope")),
        client.get("/api/workflows/nope/schema"),
    ):
        assert response.status_code == 404
        assert response.json() == error("not_found", f"unknown workflow 'nope' {known}")


def test_an_unknown_task_is_a_404(client: TestClient) -> None:
    message = "unknown task 'nope' (finished tasks are kept for 600 seconds)"
    for response in (client.get("/api/tasks/nope"), client.post("/api/tasks/nope/cancel")):
        assert response.status_code == 404
        assert response.json() == error("not_found", message)


def test_a_missing_required_input_is_named(client: TestClient) -> None:
    response = client.post("/api/workflows/runs", json={"input": {"max_tokens": 4}})
    assert response.status_code == 400
    assert response.json() == error("invalid_input", "missing required input 'prompt'")
    # Null counts as missing; so does an empty input.
    for body in ({"input": {"prompt": None}}, {"input": {}}, {}):
        assert client.post("/api/workflows/runs", json=body).json() == response.json()


def test_an_input_of_the_wrong_type_fails_the_run_with_a_400(client: TestClient) -> None:
    body = run_body()
    body["input"]["temperature"] = "hot"
    response = client.post("/api/workflows/runs", json=body)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"] == {
        "type": "invalid_input",
        "message": "input 'temperature' must be a number, got 'hot'",
    }


def test_a_prompt_longer_than_the_context_is_a_400_with_both_numbers(
    client: TestClient,
) -> None:
    response = client.post("/api/workflows/tiny/runs", json={"input": {"prompt": LONG_PROMPT}})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "failed"
    assert body["workflow_id"] == "tiny"
    assert "output" not in body
    assert body["error"]["type"] == "context_length_exceeded"
    message = body["error"]["message"]
    assert re.fullmatch(
        r"the prompt is (\d+) tokens long, but the model's context holds 64 tokens", message
    ), message
    assert int(message.split()[3]) > 64


def test_a_body_over_the_size_limit_is_a_413(client_for: Client) -> None:
    client = client_for(writer_compose(max_request_size="1KB"))
    body = b'{"input": {"prompt": "' + b"x" * 1100 + b'"}}'
    response = client.post("/api/workflows/runs", content=body, headers=JSON)
    assert response.status_code == 413
    assert response.json() == error(
        "request_too_large",
        f"the request body is {len(body)} bytes; the limit is 1000 bytes"
        " (controller.max_request_size)",
    )
    # Without a Content-Length (chunked), the limit holds as the body arrives.
    chunked = client.post(
        "/api/workflows/runs", content=iter([body[:600], body[600:]]), headers=JSON
    )
    assert chunked.status_code == 413
    assert chunked.json() == error(
        "request_too_large",
        "the request body is more than 1000 bytes; the limit is 1000 bytes"
        " (controller.max_request_size)",
    )
    assert client.post("/api/workflows/runs", json=run_body()).status_code == 200


def test_a_workflow_id_in_the_body_must_match_the_path(client: TestClient) -> None:
    response = client.post("/api/workflows/write/runs", json=run_body(workflow_id="stream"))
    assert response.status_code == 400
    assert response.json() == error(
        "invalid_input", "the path names workflow 'write' but the body names 'stream'"
    )


def test_an_unknown_route_is_a_404(client: TestClient) -> None:
    for path in ("/api/nothing", "/workflows", "/api/workflows/write"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == error("not_found", f"no route GET {path}")


def test_a_wrong_method_is_a_405_with_the_allowed_ones(client: TestClient) -> None:
    response = client.delete("/api/workflows")
    assert response.status_code == 405
    assert response.json() == error(
        "method_not_allowed", "method DELETE is not allowed on /api/workflows"
    )
    assert response.headers["allow"] == "GET"
    assert client.get("/api/workflows/runs").status_code == 405


def test_a_bug_in_a_request_is_a_500_without_a_traceback(
    client_for: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(writer_compose(), raise_server_exceptions=False)

    def broken(*args: object) -> None:
        raise RuntimeError("secret internals at 0xdeadbeef")

    monkeypatch.setattr(workflow_routes, "workflow_inputs", broken)
    response = client.get("/api/workflows/write/schema")
    assert response.status_code == 500
    assert response.json() == error(
        "internal_error", "the server failed on this request (see its log)"
    )
    assert "Traceback" not in response.text and "0xdeadbeef" not in response.text
    monkeypatch.undo()
    assert client.get("/api/workflows/write/schema").status_code == 200
    assert client.post("/api/workflows/runs", json=run_body()).status_code == 200


def test_a_bug_inside_a_run_fails_that_task_only(
    client_for: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(writer_compose(), raise_server_exceptions=False)
    runner = client.app.state.service.runner  # type: ignore[attr-defined]
    execute = runner.execute

    async def broken_run(run: Any, context: Any = None) -> Any:
        if run.input.get("prompt") == "crash":
            raise KeyError("jobs")
        return await execute(run, context)

    monkeypatch.setattr(runner, "execute", broken_run)
    response = client.post("/api/workflows/runs", json=run_body("crash"))
    assert response.status_code == 500
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"]["type"] == "runtime_error"
    assert "Traceback" not in response.text
    assert client.post("/api/workflows/runs", json=run_body()).json()["status"] == "completed"
