"""Servers for the HTTP tests: FastAPI's TestClient over an app, and a real
uvicorn server on a free loopback port, both on the embedded model."""

from __future__ import annotations

import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.config import load_config
from runtime.server.app import create_app
from runtime.service import Service

EXAMPLES = Path(__file__).parents[2] / "examples"


def make_app(compose: str | Path, tmp_path: Path | None = None) -> FastAPI:
    """An app for an example folder name, a path, or YAML text."""
    if isinstance(compose, str) and "\n" in compose:
        assert tmp_path is not None, "YAML text needs tmp_path"
        path = tmp_path / "model-compose.yml"
        path.write_text(textwrap.dedent(compose))
    elif isinstance(compose, str):
        path = EXAMPLES / compose
    else:
        path = compose
    return create_app(Service(load_config([path]).config))


def wait_ready(get: Callable[[str], httpx.Response], path: str = "/api/health") -> None:
    deadline = time.monotonic() + 60
    while get(path).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never became ready: {get(path).text}")
        time.sleep(0.05)


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """`client_for("quickstart")` or `client_for(yaml_text)`: a TestClient whose
    models are loaded; `ready=False` returns it before they are."""
    clients: list[TestClient] = []

    def make(
        compose: str | Path, ready: bool = True, health: str = "/api/health", **kwargs: object
    ) -> TestClient:
        client = TestClient(make_app(compose, tmp_path), **kwargs)  # type: ignore[arg-type]
        client.__enter__()
        clients.append(client)
        if ready:
            wait_ready(client.get, health)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """`live_server("quickstart")`: a real uvicorn on 127.0.0.1, models loaded."""
    servers: list[LiveServer] = []

    def start(compose: str | Path, health: str = "/api/health") -> LiveServer:
        app = make_app(compose, tmp_path)
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        live = LiveServer(f"http://127.0.0.1:{port}", app, server, thread)
        servers.append(live)
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        wait_ready(lambda path: httpx.get(live.url + path), health)
        return live

    yield start
    for live in servers:
        live.stop()


def wait_for(
    url: str,
    process: subprocess.Popen[Any] | None = None,
    log: Path | None = None,
    seconds: float = 60,
) -> None:
    """Poll `url` until it answers 200; fail early, with the server's output,
    when `process` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = log.read_text(errors="replace") if log else process.communicate()
            raise AssertionError(f"the server exited ({process.returncode}): {output}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    output = log.read_text(errors="replace") if log else ""
    raise TimeoutError(f"{url} did not answer 200 in {seconds}s {output}".rstrip())
