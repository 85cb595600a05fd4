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
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from runtime.config import load_config
from runtime.service import Service
from tests.server.composes import writer_compose
from tests.server.conftest import make_app, wait_ready

# Small socket buffers on both ends fill after a few hundred tokens; with the
# defaults Linux grows the server's send buffer up to 4 MB first, and the test
# would wait a minute for the window to close.
BUFFER = 4096


@contextlib.contextmanager
def small_buffer_server(tmp_path: Path, compose: str) -> Iterator[str]:
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
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def busy_slots(url: str) -> int:
    return int(httpx.get(url + "/api/models").json()["models"][0]["busy"])


def stop_reading(url: str, body: dict[str, object]) -> socket.socket:
    """Send a streaming request from a socket with a small receive buffer,
    and never read from it (nor close it)."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    host, port = url.removeprefix("http://").split(":")
    client.connect((host, int(port)))
    data = json.dumps(body).encode()
    head = (
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    client.sendall(head.encode() + data)
    return client


def test_a_client_that_stops_reading_is_dropped_and_its_slot_freed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.server.streaming")
    with small_buffer_server(tmp_path, writer_compose(write_timeout="1s")) as url:
        # Long chunks (five alternatives per token) fill the buffers sooner.
        body = {"model": "writer", "prompt": "Once upon a time", "max_tokens": 4000}
        stalled = stop_reading(url, {**body, "stream": True, "logprobs": 5})
        try:
            deadline = time.monotonic() + 30
            while busy_slots(url) == 0:
                assert time.monotonic() < deadline, "the generation never started"
                time.sleep(0.05)
            # A few hundred tokens fill the buffers; then 1 s without a read.
            deadline = time.monotonic() + 45
            while busy_slots(url) != 0:
                assert time.monotonic() < deadline, "the slot was never freed"
                time.sleep(0.1)
            dropped = [r.getMessage() for r in caplog.records if "dropped a stream" in r.message]
            assert len(dropped) == 1
            assert dropped[0].endswith("it read nothing for 1 s (controller.write_timeout)")
            # The server serves on, and the stalled connection still has not been read.
            short = httpx.post(url + "/v1/completions", json={**body, "max_tokens": 4}, timeout=60)
            assert short.status_code == 200
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
