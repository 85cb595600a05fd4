"""The Web UI's gate when `controller.api_key` is set, through the app that
mount_webui builds: every route needs a logged-in session but the login page
and NiceGUI's own files; `?token=<key>` logs in and leaves the address; the
key is in no cookie, no page and no log line (a real uvicorn at DEBUG)."""

from __future__ import annotations

import base64
import logging
import re
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nicegui import __version__ as nicegui_version
from nicegui.storage import Storage
from nicegui.testing.general import nicegui_reset_globals
from starlette.websockets import WebSocketDisconnect

from runtime.config import load_config
from runtime.service import Service
from runtime.webui import mount_webui
from runtime.webui.auth import SESSION_COOKIE, WRONG_TOKEN, WebUIAuth, is_public
from runtime.webui.headers import SECURITY_HEADERS
from runtime.webui.login import WRONG_KEY
from tests.server.conftest import free_port

KEY = "ui-key-4711-do-not-log"
WRONG = "wrong-guess-0815"
COMPOSE = f"""
    controller:
      name: Keyed
      api_key: {KEY}
      webui:
        port: 8081
    workflow:
      title: Secret workflow
      job:
        component: writer
    component:
      id: writer
      type: model
      task: text-generation
      model: HuggingFaceTB/SmolLM2-135M-Instruct
      text: ${{input.prompt}}
"""
STATIC = f"/_nicegui/{nicegui_version}/static/nicegui.js"
UNAUTHORIZED = {"error": {"type": "unauthorized", "message": "log in to the Web UI first"}}


def ui_app(tmp_path: Path) -> FastAPI:
    path = tmp_path / "model-compose.yml"
    path.write_text(textwrap.dedent(COMPOSE))
    app = FastAPI()
    mount_webui(app, Service(load_config([path], env={}).config), "http://127.0.0.1:8080/api")
    return app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The UI app with a key, before anyone logged in (redirects not followed)."""
    with nicegui_reset_globals(), TestClient(ui_app(tmp_path), follow_redirects=False) as client:
        yield client


def socket_url(client_id: str) -> str:
    return f"/_nicegui_ws/socket.io/?client_id={client_id}&EIO=4&transport=polling"


def client_id_of(page: str) -> str:
    match = re.search(r"""["']client_id["']:\s*["']([^"']+)["']""", page)
    assert match, "no client id in the page"
    return match.group(1)


def test_every_page_redirects_to_the_login_until_the_session_logs_in(client: TestClient) -> None:
    for path in ("/", "/anything", "/login/"):
        response = client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/login"), path
    login = client.get("/login")
    assert login.status_code == 200
    assert "needs the server" in login.text
    assert "Secret workflow" not in login.text
    # NiceGUI's own files draw the login page: the same for every install.
    assert client.get(STATIC).status_code == 200


def test_nicegui_routes_and_sockets_refuse_a_session_that_has_not_logged_in(
    client: TestClient,
) -> None:
    for method, path in (
        ("GET", socket_url("made-up")),
        ("POST", socket_url("made-up")),
        ("POST", "/_nicegui/client/made-up/upload/1"),
        ("GET", "/_nicegui/auto/static/token/file.txt"),
        ("POST", "/"),
    ):
        response = client.request(method, path)
        assert response.status_code == 401, (method, path)
        assert response.json() == UNAUTHORIZED
    websocket = socket_url("made-up").replace("polling", "websocket")
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(websocket):
        pass
    assert refused.value.code == 1008


def test_the_login_pages_own_socket_may_connect_to_send_the_form(client: TestClient) -> None:
    client_id = client_id_of(client.get("/login").text)
    assert client.get(socket_url(client_id)).status_code != 401
    assert client.get(socket_url("someone-else")).status_code == 401


def test_a_token_in_the_address_logs_in_and_the_address_loses_it(client: TestClient) -> None:
    response = client.get(f"/?token={KEY}&lang=en")
    assert (response.status_code, response.headers["location"]) == (303, "/?lang=en")
    assert SESSION_COOKIE in response.headers["set-cookie"]
    page = client.get("/")
    assert page.status_code == 200 and "Secret workflow" in page.text
    assert KEY not in page.text
    assert client.get("/login").headers["location"] == "/"
    assert client.get(socket_url("any-client")).status_code != 401


def test_logging_out_ends_the_login_and_returns_to_the_login_page(client: TestClient) -> None:
    client.get(f"/?token={KEY}")
    assert client.get("/").status_code == 200
    before = client.cookies[SESSION_COOKIE]
    response = client.get("/logout")
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert client.get("/").headers["location"] == "/login"
    assert client.get(socket_url("any-client")).status_code == 401
    assert client.get("/login").status_code == 200
    # An old copy of the cookie is no login either.
    client.cookies.set(SESSION_COOKIE, before)
    assert client.get("/").headers["location"] == "/login"
    # Logging out twice, or before logging in, leads to the login page too.
    assert client.get("/logout").headers["location"] == "/login"


def test_logging_out_sends_the_sessions_open_pages_to_the_login_page() -> None:
    auth = WebUIAuth(KEY)
    session: dict[str, object] = {}
    other: dict[str, object] = {}
    for each in (session, other):
        auth.log_in(auth.session_id(each))
    left: list[str] = []
    auth.when_logged_out(session, lambda: left.append("tab 1"))
    auth.when_logged_out(session, lambda: left.append("tab 2"))
    forget = auth.when_logged_out(session, lambda: left.append("closed tab"))
    auth.when_logged_out(other, lambda: left.append("another browser"))
    forget()
    auth.log_out(session)
    assert sorted(left) == ["tab 1", "tab 2"]
    assert not auth.is_logged_in(session) and auth.is_logged_in(other)
    assert session == {}  # the next login gets a new session id


def test_wrong_tokens_are_limited_per_address_and_the_right_one_resets(
    client: TestClient,
) -> None:
    auth = client.app.state.webui_auth  # type: ignore[attr-defined]
    now = [1000.0]
    auth.failures.clock = lambda: now[0]
    for _ in range(5):
        assert client.get(f"/?token={WRONG}").headers["location"] == "/login"
    for token in (WRONG, KEY):  # the right key waits too
        refused = client.get(f"/?token={token}")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "60"
        assert refused.json() == {
            "error": {
                "type": "rate_limited",
                "message": "too many wrong API keys from this address: try again in 60 s",
            }
        }
        assert token not in refused.text
    assert client.get("/").headers["location"] == "/login"
    now[0] += 60
    assert client.get(f"/?token={KEY}").headers["location"] == "/"
    assert auth.failures.retry_after("testclient") is None  # reset by the login
    client.get("/logout")
    for _ in range(4):
        client.get(f"/?token={WRONG}")
    assert client.get(f"/?token={KEY}").headers["location"] == "/"


def test_the_ui_socket_answers_only_its_own_origin(client: TestClient) -> None:
    client.get(f"/?token={KEY}")
    url = socket_url(client_id_of(client.get("/").text))
    other = client.get(url, headers={"Origin": "http://evil.example"})
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    assert client.get(url, headers={"Origin": "http://testserver"}).status_code == 200


def test_a_crafted_path_with_the_token_cannot_redirect_elsewhere(client: TestClient) -> None:
    response = client.get(f"//evil.example/?token={KEY}")
    assert response.headers["location"] == "/"


def test_a_wrong_token_leads_to_the_login_page_with_a_message(client: TestClient) -> None:
    response = client.get(f"/?token={WRONG}")
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    login = client.get("/login")
    assert WRONG_TOKEN in login.text
    assert WRONG not in login.text
    assert WRONG_TOKEN not in client.get("/login").text  # said once
    assert client.get("/").headers["location"] == "/login"
    assert WRONG_KEY != WRONG_TOKEN


def test_the_session_cookie_holds_no_key_and_its_secret_is_not_the_key(
    client: TestClient,
) -> None:
    response = client.get(f"/?token={KEY}")
    cookie = response.cookies[SESSION_COOKIE]
    payload = base64.b64decode(cookie.split(".")[0] + "==").decode()
    assert KEY not in payload and KEY not in cookie
    assert Storage.secret is not None and KEY not in Storage.secret


def test_the_login_page_redirects_refusals_and_the_page_carry_the_security_headers(
    client: TestClient,
) -> None:
    names = {name.decode() for name, _ in SECURITY_HEADERS}
    assert names == {
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
    }
    responses = [client.get("/login"), client.get("/"), client.post("/"), client.get(STATIC)]
    client.get(f"/?token={KEY}")
    responses.append(client.get("/"))
    for response in responses:
        for name, value in SECURITY_HEADERS:
            assert response.headers[name.decode()] == value.decode(), (response.url, name)
    assert "frame-ancestors 'none'" in responses[0].headers["content-security-policy"]


def test_only_nicegui_files_are_public() -> None:
    assert is_public(STATIC) and is_public("/login")
    for path in ("/", "/_nicegui/client/x/upload/1", "/_nicegui_ws/socket.io/", "/loginx"):
        assert not is_public(path), path
    assert not is_public(f"/_nicegui/{nicegui_version}/static/../../client/x")


def test_without_an_api_key_the_ui_asks_for_nothing() -> None:
    service = Service(load_config([Path(__file__).parents[2] / "examples" / "quickstart"]).config)
    assert service.config.controller.api_key is None
    with nicegui_reset_globals():
        app = FastAPI()
        mount_webui(app, service, "http://127.0.0.1:8080/api")
        with TestClient(app, follow_redirects=False) as client:
            response = client.get("/")
            assert response.status_code == 200
            assert "set-cookie" not in response.headers


def test_the_key_is_in_no_log_line_even_at_debug_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A real uvicorn with access logs, every logger at DEBUG: the token
    login, a wrong token, the login page and the logged-in page."""
    caplog.set_level(logging.DEBUG)
    with nicegui_reset_globals():
        port = free_port()
        # log_config=None: uvicorn's loggers propagate to the root, where caplog listens.
        config = uvicorn.Config(
            ui_app(tmp_path), host="127.0.0.1", port=port, log_level="debug", log_config=None
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started:
                assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
                time.sleep(0.02)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
                assert browser.get(f"/?token={WRONG}").status_code == 303
                assert browser.get(f"/login?token={WRONG}").status_code == 303
                assert browser.get("/login").status_code == 200
                assert browser.get(f"/?token={KEY}").status_code == 303
                assert browser.get("/").status_code == 200
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    # What the server wrote: the test's own HTTP client logs the URLs it asks for.
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logged = "\n".join(r.getMessage() for r in server_side) + "".join(capfd.readouterr())
    assert '"GET /login HTTP/1.1" 200' in logged  # the access log was captured
    assert '"GET /login HTTP/1.1" 303' in logged  # the token requests, without their token
    assert KEY not in logged and WRONG not in logged
