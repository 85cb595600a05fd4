"""The API key and CORS, on every route."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.server.composes import run_body, writer_compose

Client = Callable[..., TestClient]
KEY = {"Authorization": "Bearer secret"}
UNAUTHORIZED = {
    "error": {
        "type": "unauthorized",
        "message": "a valid API key is required: send 'Authorization: Bearer <key>'",
    }
}
GUARDED = [
    ("GET", "/api/workflows"),
    ("GET", "/api/workflows/write/schema"),
    ("POST", "/api/workflows/runs"),
    ("POST", "/api/workflows/write/runs"),
    ("POST", "/api/workflows/__default__/runs"),
    ("GET", "/api/tasks/some-task"),
    ("GET", "/api/tasks/health"),  # a task lookup, not the health route
    ("POST", "/api/tasks/some-task/cancel"),
    ("GET", "/v1/models"),
    ("GET", "/api/nothing"),
]


@pytest.fixture
def guarded(client_for: Client) -> TestClient:
    return client_for(writer_compose(api_key="secret"))


def test_every_route_but_health_needs_the_api_key(guarded: TestClient) -> None:
    for method, path in GUARDED:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "secret"}):
            response = guarded.request(method, path, json=run_body(), headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json() == UNAUTHORIZED
            assert response.headers["www-authenticate"] == "Bearer"
    for path in ("/health", "/api/health"):
        assert guarded.get(path).json() == {"status": "ok"}


def test_the_api_key_opens_every_route(guarded: TestClient) -> None:
    assert guarded.get("/api/workflows", headers=KEY).status_code == 200
    assert guarded.get("/api/workflows/write/schema", headers=KEY).status_code == 200
    run = guarded.post("/api/workflows/runs", json=run_body(), headers=KEY)
    assert run.json()["status"] == "completed"
    task = guarded.get(f"/api/tasks/{run.json()['task_id']}", headers=KEY)
    assert task.json() == run.json()
    cancel = guarded.post(f"/api/tasks/{run.json()['task_id']}/cancel", headers=KEY)
    assert cancel.status_code == 200
    lowercase = guarded.get("/api/workflows", headers={"authorization": "bearer secret"})
    assert lowercase.status_code == 200
    # /v1 answers past the key check (whatever the OpenAI routes then say).
    assert guarded.get("/v1/models", headers=KEY).status_code != 401


A_ORIGIN, B_ORIGIN, OTHER = "http://a.example", "http://b.example", "http://evil.example"


def preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options(
        "/api/workflows/runs",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    return dict(response.headers)


@pytest.mark.parametrize(
    "origins", [f"{A_ORIGIN}, {B_ORIGIN}", [A_ORIGIN, B_ORIGIN]], ids=["string", "list"]
)
def test_cors_echoes_only_the_configured_origins(client_for: Client, origins: object) -> None:
    client = client_for(writer_compose(origins=origins))
    for origin in (A_ORIGIN, B_ORIGIN):
        assert preflight(client, origin)["access-control-allow-origin"] == origin
        simple = client.get("/api/workflows", headers={"Origin": origin})
        assert simple.status_code == 200
        assert simple.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in preflight(client, OTHER)
    other = client.get("/api/workflows", headers={"Origin": OTHER})
    assert "access-control-allow-origin" not in other.headers


def test_cors_allows_any_origin_by_default(client_for: Client) -> None:
    client = client_for(writer_compose())
    assert preflight(client, OTHER)["access-control-allow-origin"] == "*"
    simple = client.get("/api/workflows", headers={"Origin": OTHER})
    assert simple.headers["access-control-allow-origin"] == "*"


def test_a_browser_can_preflight_and_read_a_401_when_a_key_is_set(client_for: Client) -> None:
    client = client_for(writer_compose(api_key="secret", origins=[A_ORIGIN]))
    headers = preflight(client, A_ORIGIN)
    assert headers["access-control-allow-origin"] == A_ORIGIN
    assert "authorization" in headers["access-control-allow-headers"].lower()
    refused = client.get("/api/workflows", headers={"Origin": A_ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == A_ORIGIN
