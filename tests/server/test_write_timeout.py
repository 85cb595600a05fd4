"""A client that stops reading a stream (its TCP window full, the connection
left open) is dropped after `controller.write_timeout`: its generation is
cancelled and its slot freed, on a real uvicorn server on loopback."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from runtime.config import load_config
from runtime.service import Service
from tests.server.composes import run_body, writer_compose
from tests.server.conftest import make_app, wait_ready

# Small socket buffers on both ends fill after a few hundred tokens; with the
# defaults Linux grows the server's send buffer up to 4 MB first, and the test
# would wait a minute for the window to close.
BUFFER = 4096


@contextlib.contextmanager
def small_buffer_server(tmp_path: Path, compose: str) -> Iterator[tuple[str, Service]]:
    """uvicorn serving `compose` on a loopback socket whose connections get a
    small send buffer (accepted sockets inherit the listening one's)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(compose, tmp_path)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        wait_ready(lambda path: httpx.get(url + path))
        yield url, app.state.service
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def busy_slots(url: str) -> int:
    return int(httpx.get(url + "/api/models").json()["models"][0]["busy"])


def stop_reading(url: str, path: str, body: dict[str, object]) -> socket.socket:
    """Send a streaming request from a socket with a small receive buffer,
    and never read from it (nor close it)."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    host, port = url.removeprefix("http://").split(":")
    client.connect((host, int(port)))
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    client.sendall(head.encode() + data)
    return client


def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def dropped_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "dropped a stream" in r.message]


DROPPED = "it read nothing for 1 s (controller.write_timeout)"


def test_a_run_whose_client_stops_reading_is_cancelled_and_its_slot_freed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One run at a time (max_concurrent_count: 1): the stalled run holds the
    only slot until it is dropped, and the next run is served then."""
    caplog.set_level(logging.WARNING, logger="runtime.server.streaming")
    compose = writer_compose(write_timeout="1s", max_concurrent_count=1)
    with small_buffer_server(tmp_path, compose) as (url, service):
        body = run_body(max_tokens=3000)
        stalled = stop_reading(url, "/api/workflows/stream/runs", body)
        try:
            until(lambda: bool(service.tasks.running()), 30, "the run never started")
            (task,) = service.tasks.running()
            # A few hundred tokens fill the buffers; then 1 s without a read.
            until(lambda: not service.tasks.running(), 45, "the run was never dropped")
            ended = httpx.get(f"{url}/api/tasks/{task.id}").json()
            assert ended["status"] == "cancelled"
            assert len(dropped_lines(caplog)) == 1
            assert dropped_lines(caplog)[0].endswith(DROPPED)
            until(lambda: busy_slots(url) == 0, 10, "the engine's slot was never freed")
            after = httpx.post(f"{url}/api/workflows/runs", json=run_body(), timeout=60)
            assert after.json()["status"] == "completed"
        finally:
            stalled.close()


def test_an_openai_stream_whose_client_stops_reading_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.server.streaming")
    with small_buffer_server(tmp_path, writer_compose(write_timeout="1s")) as (url, _):
        # Long chunks (five alternatives per token) fill the buffers sooner.
        body = {"model": "writer", "prompt": "Once upon a time", "max_tokens": 3000}
        stalled = stop_reading(url, "/v1/completions", {**body, "stream": True, "logprobs": 5})
        try:
            until(lambda: busy_slots(url) == 1, 30, "the generation never started")
            until(lambda: bool(dropped_lines(caplog)), 45, "the stream was never dropped")
            assert dropped_lines(caplog)[0].endswith(DROPPED)
            until(lambda: busy_slots(url) == 0, 10, "the engine's slot was never freed")
            short = httpx.post(url + "/v1/completions", json={**body, "max_tokens": 4}, timeout=60)
            assert short.json()["usage"]["completion_tokens"] == 4
        finally:
            stalled.close()


def test_write_timeout_defaults_to_30_seconds_and_0_turns_it_off(tmp_path: Path) -> None:
    def timeout_of(compose: str) -> float | None:
        path = tmp_path / "model-compose.yml"
        path.write_text(compose)
        return Service(load_config([path]).config).write_timeout

    assert timeout_of(writer_compose()) == 30.0
    assert timeout_of(writer_compose(write_timeout="500ms")) == 0.5
    assert timeout_of(writer_compose(write_timeout=0)) is None
