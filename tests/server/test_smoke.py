"""The seed's curl bodies against both kinds of server."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient

from tests.conftest import example_yaml
from tests.server.conftest import LiveServer

SEED_CHAT_BODY = {
    "input": {
        "system-prompt": "You are a helpful AI assistant.",
        "user-prompt": "Explain quantum computing in simple terms.",
    }
}


def test_the_seed_chat_curl_body_returns_the_answer_in_output_generated(
    client_for: Callable[..., TestClient],
) -> None:
    response = client_for("quickstart").post("/api/workflows/runs", json=SEED_CHAT_BODY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert "quantum" in body["output"]["generated"].lower()


# The seed's chat workflow (examples/quickstart), with short answers.
SHORT_CHAT = example_yaml("quickstart", ("max_output_length: 512", "max_output_length: 16"))


def test_the_seed_chat_curl_body_without_its_optional_system_prompt_is_answered(
    client_for: Callable[..., TestClient],
) -> None:
    client = client_for(SHORT_CHAT)
    schema = client.get("/api/workflows/__default__/schema").json()
    assert [(i["name"], i["required"]) for i in schema["input"]] == [
        ("system_prompt", False),
        ("user_prompt", True),
    ]
    body = {"input": {"user-prompt": "Explain quantum computing in simple terms."}}
    response = client.post("/api/workflows/runs", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert response.json()["output"]["generated"].strip()


def test_the_seed_chat_curl_body_without_its_user_prompt_is_a_400_naming_it(
    client_for: Callable[..., TestClient],
) -> None:
    body = {"input": {"system-prompt": "You are a helpful AI assistant."}}
    response = client_for(SHORT_CHAT).post("/api/workflows/runs", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "error": {"type": "invalid_input", "message": "missing required input 'user_prompt'"}
    }


def test_the_seed_text_curl_body_works_on_a_real_server(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server("quickstart-text")
    response = httpx.post(
        f"{server.url}/api/workflows/__default__/runs",
        json={"input": {"prompt": "Once upon a time in a distant galaxy"}},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json()["output"]["generated"].startswith("Once upon a time in a distant galaxy")
