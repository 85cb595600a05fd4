"""The Host header check against DNS rebinding: a server on loopback answers
only Hosts that name loopback, its own host or `allowed_hosts`; a server on
another address answers any Host unless the file lists `allowed_hosts`. On
the API (both its shapes) and the Web UI, and on a real `model-compose up`."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nicegui.testing.general import nicegui_reset_globals
from starlette.websockets import WebSocketDisconnect

from runtime.config import load_config
from runtime.host_names import host_pattern_problem, is_loopback, matches, request_host
from runtime.server.app import OPENAI_PREFIX
from runtime.server.hosts import guard_hosts
from runtime.service import Service
from runtime.webui import mount_webui
from tests.server.composes import writer_compose
from tests.server.conftest import EXAMPLES, free_port, make_app, wait_for

SETTING = "controller.adapter.allowed_hosts"
LOOPBACK_HOSTS = [
    "localhost",
    "localhost:8080",
    "LOCALHOST:8080",
    "app.localhost:3000",
    "127.0.0.1",
    "127.0.0.1:8080",
    "127.1.2.3:9",
    "[::1]",
    "[::1]:8080",
]
# A rebinding page's own name, names that only look local, and junk.
FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8080",
    "localhost.evil.example",
    "127.0.0.1.evil.example",
    "127.0.0.1.nip.io:8080",
    "192.168.1.20:8080",
    "[::2]:8080",
    "localhost:notaport",
    "user@localhost",
    "localhost/path",
]


def test_loopback_names_and_addresses() -> None:
    for host in ("localhost", "a.b.localhost", "127.0.0.1", "127.255.0.9", "::1", "[::1]"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.2", "localhost.example", "example.com", ""):
        assert not is_loopback(host), host


def test_a_host_header_is_read_without_its_port_and_brackets() -> None:
    assert request_host("Example.COM:8080") == "example.com"
    assert request_host("[::1]:8080") == "::1"
    assert request_host("127.0.0.1") == "127.0.0.1"
    for header in ("a b", "x:99999", "x:port", "u@x", "x/y", "x?y", ""):
        assert request_host(header) is None, header


def test_allowed_hosts_patterns_are_names_wildcard_domains_addresses_or_star() -> None:
    for pattern in ("my.box.lan", "*.box.lan", "box", "192.168.1.5", "::1", "[fe80::1]", "*"):
        assert host_pattern_problem(pattern) is None, pattern
    for pattern in ("http://my.box", "my.box:8080", "my.box/", "*box.lan", "a.*.lan", "", " x"):
        assert host_pattern_problem(pattern), pattern
    assert matches("a.box.lan", "*.box.lan") and matches("a.b.box.lan", "*.box.lan")
    assert not matches("box.lan", "*.box.lan") and not matches("evilbox.lan", "*.box.lan")
    assert matches("fe80::1", "[fe80::1]") and matches("anything", "*")


def guarded_api(tmp_path: Path, host: str, allowed: list[str]) -> TestClient:
    app = make_app(writer_compose(), tmp_path)
    guard_hosts(app, host, allowed, SETTING, OPENAI_PREFIX)
    return TestClient(app)  # models not loaded: /health answers either way


def status_for(client: TestClient, host: str, path: str = "/health") -> int:
    return client.get(path, headers={"Host": host}).status_code


def test_on_loopback_the_api_answers_only_loopback_hosts(tmp_path: Path) -> None:
    client = guarded_api(tmp_path, "127.0.0.1", [])
    for host in LOOPBACK_HOSTS:
        assert status_for(client, host) != 403, host
    for host in FOREIGN_HOSTS:
        assert status_for(client, host) == 403, host
    refused = client.get("/api/workflows", headers={"Host": "evil.example:8080"})
    assert refused.json() == {
        "error": {
            "type": "host_not_allowed",
            "message": "the Host 'evil.example' is not allowed: this server answers only "
            "requests to localhost, 127.0.0.1 or [::1]; to reach it by another name, add "
            f"the name to {SETTING} in the compose file",
        }
    }
    openai = client.post("/v1/chat/completions", json={}, headers={"Host": "evil.example"})
    assert openai.status_code == 403
    assert openai.json()["error"]["code"] == "host_not_allowed"
    assert openai.json()["error"]["message"].startswith("The Host 'evil.example' is not allowed")
    # Refused before CORS: a rebinding page's preflight gets no answer to use.
    preflight = client.options(
        "/api/workflows/runs",
        headers={
            "Host": "evil.example",
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers


def test_allowed_hosts_add_names_to_a_loopback_server(tmp_path: Path) -> None:
    client = guarded_api(tmp_path, "localhost", ["my.box.lan", "*.example.org"])
    for host in ("my.box.lan", "MY.BOX.LAN:8080", "api.example.org", "localhost", "[::1]:1"):
        assert status_for(client, host) != 403, host
    for host in ("example.org", "evil.example", "my.box.lan.evil.example"):
        assert status_for(client, host) == 403, host
    message = client.get("/health", headers={"Host": "evil.example"}).json()["error"]["message"]
    assert "localhost, 127.0.0.1 or [::1], my.box.lan, *.example.org;" in message


def test_a_server_on_another_address_answers_any_host_unless_allowed_hosts_are_listed(
    tmp_path: Path,
) -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::"):
        anyone = guarded_api(tmp_path, host, [])
        for name in ("evil.example", "192.168.1.20:8080", "localhost"):
            assert status_for(anyone, name) != 403, (host, name)
    listed = guarded_api(tmp_path, "192.168.1.20", ["my.box.lan"])
    for name in ("my.box.lan:8080", "192.168.1.20:8080", "127.0.0.1:8080"):
        assert status_for(listed, name) != 403, name
    assert status_for(listed, "evil.example") == 403
    every = guarded_api(tmp_path, "0.0.0.0", ["my.box.lan"])
    assert status_for(every, "0.0.0.0:8080") == 403  # no Host names every interface
    assert status_for(guarded_api(tmp_path, "127.0.0.1", ["*"]), "evil.example") != 403


UI_COMPOSE = """
    controller:
      webui:
        port: 8081
    workflow:
      job:
        component: writer
    component:
      id: writer
      type: model
      task: text-generation
      model: HuggingFaceTB/SmolLM2-135M-Instruct
      text: ${input.prompt}
"""


@pytest.fixture
def ui_client(tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "model-compose.yml"
    path.write_text(textwrap.dedent(UI_COMPOSE))
    with nicegui_reset_globals():
        app = FastAPI()
        mount_webui(app, Service(load_config([path], env={}).config), "http://127.0.0.1:8080")
        guard_hosts(app, "127.0.0.1", ["ui.box.lan"], "controller.webui.allowed_hosts")
        with TestClient(app) as client:
            yield client


def test_the_web_ui_checks_the_host_of_pages_and_sockets(ui_client: TestClient) -> None:
    for host in ("127.0.0.1:8081", "localhost:8081", "ui.box.lan:8081"):
        assert ui_client.get("/", headers={"Host": host}).status_code == 200, host
    refused = ui_client.get("/", headers={"Host": "evil.example:8081"})
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "host_not_allowed"
    assert "controller.webui.allowed_hosts" in refused.json()["error"]["message"]
    socket = "/_nicegui_ws/socket.io/?EIO=4&transport=websocket"
    connect = ui_client.websocket_connect(socket, headers={"Host": "evil.example"})
    with pytest.raises(WebSocketDisconnect) as closed, connect:
        pass
    assert closed.value.code == 1008


def test_up_checks_the_host_on_both_ports_and_warns_about_origins_star(tmp_path: Path) -> None:
    api_port, ui_port = free_port(), free_port()
    text = (EXAMPLES / "quickstart" / "model-compose.yml").read_text()
    text = text.replace("port: 8080", f'port: {api_port}\n    origins: "*"')
    text = text.replace("port: 8081", f"port: {ui_port}\n    allowed_hosts: [ui.box.lan]")
    (tmp_path / "model-compose.yml").write_text(text)
    command = str(Path(sys.executable).parent / "model-compose")
    server = subprocess.Popen(
        [command, "up"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        api, ui = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
        wait_for(f"{api}/health", server)
        evil = {"Host": "evil.example", "Origin": "http://evil.example"}
        assert httpx.get(f"{api}/api/workflows", headers=evil).status_code == 403
        assert httpx.get(f"{ui}/", headers=evil).status_code == 403
        assert httpx.get(f"{ui}/", headers={"Host": "ui.box.lan"}).status_code == 200
        local = httpx.get(f"{api}/api/workflows", headers={"Origin": "http://evil.example"})
        assert local.headers["access-control-allow-origin"] == "*"  # origins: "*" as asked
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert stderr.startswith(
        'WARNING: origins: "*" lets any web page your browser opens call this API and read '
        "its answers; list the origins that need it instead.\n"
    )
