"""Security on the API: the key on every route but /health (compared in
constant time, never logged), CORS as configured, request size limits, no
path from a request into the filesystem, loopback by default."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from tests.server.composes import run_body, writer_compose
from tests.server.conftest import EXAMPLES, LiveServer, free_port, make_app, wait_for, wait_ready

Client = Callable[..., TestClient]
KEY = {"Authorization": "Bearer secret"}
UNAUTHORIZED = {
    "error": {
        "type": "unauthorized",
        "message": "a valid API key is required: send 'Authorization: Bearer <key>'",
    }
}
# The same refusal on the OpenAI API, in OpenAI's shape, which its clients raise.
OPENAI_UNAUTHORIZED = {
    "error": {
        "message": "A valid API key is required: send 'Authorization: Bearer <key>'.",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
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
    ("GET", "/api/models"),
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/nothing"),
    ("GET", "/api/nothing"),
]


@pytest.fixture
def guarded(client_for: Client) -> TestClient:
    """A server with a key, whose rate limit never stops these tests' wrong keys."""
    client = client_for(writer_compose(api_key="secret"))
    client.app.state.key_failures.limit = 10**6  # type: ignore[attr-defined]
    return client


def test_every_route_but_health_needs_the_api_key(guarded: TestClient) -> None:
    for method, path in GUARDED:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "secret"}):
            response = guarded.request(method, path, json=run_body(), headers=headers)
            assert response.status_code == 401, (method, path, headers)
            openai = path.startswith("/v1/")
            assert response.json() == (OPENAI_UNAUTHORIZED if openai else UNAUTHORIZED)
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


LOCAL_ORIGINS = [
    "http://localhost:3000",
    "http://localhost",
    "https://localhost:8443",
    "http://127.0.0.1:5173",
    "http://127.1.2.3:8000",
    "http://[::1]:8080",
]
# Names that only look local, and other sites.
FOREIGN_ORIGINS = [
    "https://evil.example",
    "http://localhost.evil.example",
    "http://127.0.0.1.evil.example",
    "http://evil.example:3000",
    "http://localhost:3000/",
    "null",
]


@pytest.mark.parametrize("key", [None, "secret"], ids=["without-key", "with-key"])
def test_cors_allows_only_pages_on_this_machine_by_default(client_for: Client, key: str) -> None:
    client = client_for(writer_compose(**({"api_key": key} if key else {})))
    headers = KEY if key else {}
    for origin in LOCAL_ORIGINS:
        assert preflight(client, origin)["access-control-allow-origin"] == origin, origin
        simple = client.get("/api/workflows", headers={"Origin": origin, **headers})
        assert simple.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-credentials" not in simple.headers
    for origin in FOREIGN_ORIGINS:
        assert "access-control-allow-origin" not in preflight(client, origin), origin
        simple = client.get("/api/workflows", headers={"Origin": origin, **headers})
        assert simple.status_code == 200  # answered: the browser keeps it from the page
        assert "access-control-allow-origin" not in simple.headers


def test_origins_star_still_lets_every_page_in(client_for: Client) -> None:
    client = client_for(writer_compose(origins="*"))
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


# -- every route, the comparison, the logs -------------------------------------------

SECRET = "api-key-5b8e1d-never-logged"
WRONG_SECRET = "api-key-guess-3c7a90"
OPEN_PATHS = {"/health", "/api/health"}


def concrete(path: str) -> str:
    """A route's path with its parameters filled in."""
    return re.sub(r"\{[^}]+\}", "some-id", path)


def every_route(routes: Any, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, walking into included routers (FastAPI
    keeps one as a lazy route) and mounted apps (/v1)."""
    for route in iter_route_contexts(routes):
        original = route.original_route
        if isinstance(original, Mount):
            yield from every_route(original.routes, prefix + original.path)
        else:
            yield prefix + (route.path or ""), getattr(original, "methods", None) or {"GET"}


def test_every_route_of_the_app_needs_the_key_including_v1_and_the_docs(
    guarded: TestClient,
) -> None:
    """Every route FastAPI has, not a list kept by hand: a route added later is
    covered too. The OpenAPI document and the docs pages need the key as well:
    they list the workflows and their inputs, which GET /workflows guards."""
    checked = set()
    for path, methods in every_route(guarded.app.routes):  # type: ignore[attr-defined]
        for method in sorted(methods):
            if path in OPEN_PATHS:
                continue
            for headers in ({}, {"Authorization": "Bearer secret-but-wrong"}):
                response = guarded.request(method, concrete(path), json={}, headers=headers)
                assert response.status_code == 401, (method, path, headers)
            checked.add(path)
    assert {"/openapi.json", "/docs", "/redoc", "/v1/chat/completions", "/v1/completions"} <= (
        checked
    )
    assert {"/v1/models", "/api/workflows/runs", "/api/tasks/{task_id}"} <= checked
    for path in OPEN_PATHS:
        assert guarded.get(path).status_code == 200


def test_the_key_is_compared_with_hmac_compare_digest_on_digests(
    guarded: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constant time wherever the candidate differs (compare_digest) and
    whatever its length (both sides hashed first), for the API and the Web UI."""
    from runtime.webui.auth import WebUIAuth

    compared: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert guarded.get("/api/workflows", headers=KEY).status_code == 200
    assert guarded.get("/api/workflows", headers={"Authorization": "Bearer x"}).status_code == 401
    assert WebUIAuth("secret").accepts("secret") and not WebUIAuth("secret").accepts("x" * 500)
    digest = hashlib.sha256(b"secret").digest()
    assert [b for _, b in compared] == [digest] * 4
    assert [a == digest for a, _ in compared] == [True, False, True, False]
    assert all(len(a) == 32 for a, _ in compared)


@contextlib.contextmanager
def uvicorn_at_debug(app: FastAPI) -> Iterator[str]:
    """`app` on a real uvicorn with access logs, every logger at DEBUG and
    propagating to the root logger (log_config=None), where caplog listens."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="debug", log_config=None, access_log=True
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def server_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """What the server wrote: log records (not the test's own HTTP client's,
    which logs the URLs it asks for) and anything printed to stdout/stderr."""
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    return "\n".join(r.getMessage() for r in records) + "".join(capfd.readouterr())


def test_the_key_is_in_no_log_line_even_at_debug_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(writer_compose(api_key=SECRET), tmp_path)
    right = {"Authorization": f"Bearer {SECRET}"}
    with uvicorn_at_debug(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        wait_ready(lambda path: client.get(path))
        assert client.post("/api/workflows/runs", json=run_body(), headers=right).status_code == 200
        stream = client.post("/api/workflows/stream/runs", json=run_body(), headers=right)
        assert stream.status_code == 200
        chat = {"model": "writer", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        assert client.post("/v1/chat/completions", json=chat, headers=right).status_code == 200
        assert client.post("/api/workflows/runs", content=b"{", headers=right).status_code == 400
        for headers in ({}, {"Authorization": f"Bearer {WRONG_SECRET}"}, {"X-Api-Key": SECRET}):
            assert client.get("/api/workflows", headers=headers).status_code == 401
        assert client.get("/health", headers=right).status_code == 200
    logged = server_logs(caplog, capfd)
    assert '"POST /api/workflows/runs HTTP/1.1" 200' in logged  # the access log was captured
    assert SECRET not in logged and WRONG_SECRET not in logged


# -- CORS ---------------------------------------------------------------------------------


def test_cors_refuses_a_preflight_from_another_origin_and_allows_credentials_only_with_a_list(
    client_for: Client,
) -> None:
    listed = client_for(writer_compose(origins=[A_ORIGIN]))
    refused = listed.options(
        "/api/workflows/runs",
        headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert preflight(listed, A_ORIGIN)["access-control-allow-credentials"] == "true"
    # "*" with credentials would let any site use a browser's credentials.
    anyone = client_for(writer_compose(origins="*"))
    assert "access-control-allow-credentials" not in preflight(anyone, OTHER)


# -- request size ---------------------------------------------------------------------------


def raw_post(url: str, path: str, header: str, chunks: list[bytes]) -> tuple[int, bytes]:
    """POST to `path` over a plain socket with one more `header` line, then
    send `chunks`; the status and body of the answer (the server may answer,
    and close, before it has read everything)."""
    host, port = url.removeprefix("http://").split(":")
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{header}\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed: that is the point
                break
        answer = b""
        while not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("path", ["/api/workflows/runs", "/v1/chat/completions"])
def test_a_real_server_refuses_a_body_over_the_limit_with_or_without_a_length(
    live_server: Callable[..., LiveServer], path: str
) -> None:
    live = live_server(writer_compose(max_request_size="1KB"))
    # A declared length over the limit: refused before any of the body is sent.
    status, body = raw_post(live.url, path, "Content-Length: 50000000", [])
    assert status == 413 and b"50000000 bytes; the limit is 1000 bytes" in body
    error = json.loads(body)["error"]
    if path.startswith("/v1/"):  # OpenAI's shape on its API
        assert error["type"] == "invalid_request_error"
        assert error["code"] == "request_too_large" and error["param"] is None
        assert error["message"].startswith("The request body is 50000000 bytes")
    else:
        assert error["type"] == "request_too_large"
    # Chunked, no length: refused once more than the limit has arrived.
    chunk = b'{"input": {"prompt": "' + b"x" * 600
    framed = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 100 + [b"0\r\n\r\n"]
    status, body = raw_post(live.url, path, "Transfer-Encoding: chunked", framed)
    assert status == 413 and b"more than 1000 bytes" in body
    assert httpx.get(f"{live.url}/api/health").status_code == 200


# -- no path from a request into the filesystem ------------------------------------------------

PROBES = ("/etc/passwd", "probe-91c2")


@dataclass
class FileWatch:
    """Audit events (open, stat, listdir, …) whose arguments name a probe,
    while `watching`. Audit hooks cannot be removed: one per test session."""

    watching: bool = False
    seen: list[tuple[str, str]] = field(default_factory=list)

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if self.watching and event != "sys._getframe":
            text = repr(args)
            if any(probe in text for probe in PROBES):
                self.seen.append((event, text[:200]))


@pytest.fixture(scope="session")
def file_watch() -> FileWatch:
    watch = FileWatch()
    sys.addaudithook(watch.hook)
    return watch


def test_no_request_can_make_the_server_touch_a_path_it_names(
    live_server: Callable[..., LiveServer], file_watch: FileWatch
) -> None:
    """Model files come only from the compose file: a `model` naming a path in
    /v1, or a path in a workflow id, task id or input, is a 404 (or just text)
    and the server in this process opens, stats or lists nothing it names."""
    live = live_server(writer_compose())
    service = live.app.state.service
    loaded = service.pool.loaded()
    names = ["/etc/passwd", "../probe-91c2.gguf", "~/probe-91c2.gguf", "file:///etc/passwd"]
    file_watch.seen.clear()
    file_watch.watching = True
    try:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            for name in names:
                chat = {"model": name, "messages": [{"role": "user", "content": "Hi"}]}
                assert client.post("/v1/chat/completions", json=chat).status_code == 404, name
                text = {"model": name, "prompt": "Hi"}
                assert client.post("/v1/completions", json=text).status_code == 404, name
                quoted = quote(name, safe="")
                assert client.get(f"/v1/models/{quoted}").status_code == 404, name
                assert (
                    client.post(f"/api/workflows/{quoted}/runs", json=run_body()).status_code == 404
                )
                assert client.get(f"/api/workflows/{quoted}/schema").status_code == 404
                assert client.get(f"/api/tasks/{quoted}").status_code == 404
                run = client.post("/api/workflows/runs", json=run_body(prompt=name, model=name))
                assert run.status_code in (200, 400), run.text
    finally:
        file_watch.watching = False
    assert file_watch.seen == []
    # Python audits no stat (llama.cpp's loader checks a path with one): no
    # new model loaded says no path got that far.
    assert service.pool.loaded() == loaded
    # The watch does see an open in this process (the server's threads included).
    file_watch.watching = True
    with contextlib.suppress(OSError), open("/nonexistent/probe-91c2", "rb"):
        pass
    file_watch.watching = False
    assert [event for event, _ in file_watch.seen] == ["open"]


# -- loopback by default -------------------------------------------------------------------


def listening_addresses(port: int) -> list[str]:
    """The local addresses of the sockets listening on `port` (from
    /proc/net/tcp and tcp6: address and port in hex, state 0A = LISTEN)."""
    found = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                if len(address) == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    found.append(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")
def test_up_listens_on_loopback_only_when_the_file_names_no_host(tmp_path: Path) -> None:
    api_port, ui_port = free_port(), free_port()
    text = (EXAMPLES / "quickstart" / "model-compose.yml").read_text()
    assert "host:" not in text
    text = text.replace("port: 8080", f"port: {api_port}").replace("port: 8081", f"port: {ui_port}")
    (tmp_path / "model-compose.yml").write_text(text)
    command = str(Path(sys.executable).parent / "model-compose")
    server = subprocess.Popen(
        [command, "up"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(f"http://127.0.0.1:{api_port}/health", server)
        assert listening_addresses(api_port) == ["127.0.0.1"]
        assert listening_addresses(ui_port) == ["127.0.0.1"]
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert "WARNING" not in stderr


@pytest.mark.parametrize("key", [None, "public-ui-key"], ids=["without-key", "with-key"])
def test_a_public_web_ui_warns_without_a_key_and_asks_for_it_with_one(
    tmp_path: Path, key: str | None
) -> None:
    api_port, ui_port = free_port(), free_port()
    text = (EXAMPLES / "quickstart" / "model-compose.yml").read_text()
    text = text.replace("port: 8080", f"port: {api_port}")
    text = text.replace("port: 8081", f"port: {ui_port}\n    host: 0.0.0.0")
    if key:
        text = text.replace("controller:\n", f"controller:\n  api_key: {key}\n", 1)
    (tmp_path / "model-compose.yml").write_text(text)
    command = str(Path(sys.executable).parent / "model-compose")
    server = subprocess.Popen(
        [command, "up"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(f"http://127.0.0.1:{api_port}/health", server)
        page = httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=30)
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    if key:
        assert (page.status_code, page.headers["location"]) == (303, "/login")
        assert "WARNING" not in stderr and key not in stderr
    else:
        assert page.status_code == 200
        assert stderr.startswith(
            "WARNING: serving the Web UI on 0.0.0.0, reachable from other machines, with no"
            " API key: anyone who can reach its port can run your models. Set"
            " controller.api_key: the Web UI then asks for it.\n"
        )
