"""Security headers on the UI's responses, and mounting the UI on an app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from nicegui.testing.general import nicegui_reset_globals

from runtime.config import load_config
from runtime.service import Service
from runtime.webui import mount_webui
from runtime.webui.headers import SecurityHeadersMiddleware

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_every_response_gets_the_security_headers_without_losing_its_own() -> None:
    app = FastAPI()
    app.add_middleware(SecurityHeadersMiddleware)

    @app.get("/")
    def index() -> PlainTextResponse:
        return PlainTextResponse("hi", headers={"X-Frame-Options": "SAMEORIGIN"})

    response = TestClient(app).get("/")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.text == "hi"


def test_the_mounted_ui_serves_its_page_with_the_headers() -> None:
    service = Service(load_config([EXAMPLES / "quickstart"], env={}).config)
    with nicegui_reset_globals():
        app = FastAPI()
        mount_webui(app, service, "http://127.0.0.1:8080/api")
        with TestClient(app) as client:
            response = client.get("/")
            assert response.status_code == 200
            assert "<title>Generate Chat Messages</title>" in response.text
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
