"""The OpenAPI document says what the server really answers (the schema fuzz
test holds them together; these pin the parts it relies on), and the HTTP
corners the fuzzer found stay fixed. No model is loaded here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.composes import writer_compose
from tests.server.conftest import make_app
from tests.server.schema_fuzz import COMPOSE_FILE


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return make_app(COMPOSE_FILE).openapi()


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app(COMPOSE_FILE))  # no lifespan: the models never load


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_both_apis_are_in_the_document_and_every_reference_resolves(
    document: dict[str, Any],
) -> None:
    paths = set(document["paths"])
    assert {"/api/workflows/runs", "/api/tasks/{task_id}", "/v1/chat/completions"} <= paths
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_request_errors_are_documented_as_the_400_they_are_never_as_422(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        assert "422" not in operation["responses"], f"{method} {path}"
        if "requestBody" in operation:
            assert {"400", "413"} <= set(operation["responses"]), f"{method} {path}"
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_v1_errors_are_documented_in_openai_shape(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    for status in ("400", "404", "500", "503"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/OpenAIError"}


def test_every_503_declares_its_retry_after_header(document: dict[str, Any]) -> None:
    declared = [
        op["responses"]["503"] for _, _, op in operations(document) if "503" in op["responses"]
    ]
    assert declared
    for response in declared:
        assert response["headers"]["Retry-After"]["required"] is True


@pytest.mark.parametrize(
    ("path", "event"),
    [
        ("/api/workflows/runs", "DeltaEvent"),
        ("/v1/chat/completions", "ChatCompletionChunk"),
        ("/v1/completions", "TextCompletionChunk"),
    ],
)
def test_streaming_routes_document_each_event_of_their_stream(
    document: dict[str, Any], path: str, event: str
) -> None:
    ok = document["paths"][path]["post"]["responses"]["200"]["content"]
    assert "application/json" in ok
    item = ok["text/event-stream"]["itemSchema"]
    assert item["required"] == ["data"]
    assert f"#/components/schemas/{event}" in set(refs(item["properties"]["data"]))


def test_the_workflow_ids_and_model_names_served_are_enums(document: dict[str, Any]) -> None:
    workflows = ["write", "chat", "strict", "__default__"]
    models = ["writer", "chat", "strict", "HuggingFaceTB/SmolLM2-135M-Instruct"]
    schemas = document["components"]["schemas"]
    assert schemas["RunRequest"]["properties"]["workflow_id"]["anyOf"][0] == {"enum": workflows}
    assert schemas["ChatCompletionBody"]["properties"]["model"]["enum"] == models
    parameter = document["paths"]["/api/workflows/{workflow_id}/runs"]["post"]["parameters"][0]
    assert parameter["schema"]["enum"] == workflows


def test_the_schema_routes_required_flag_states_when_an_input_may_be_left_out(
    document: dict[str, Any],
) -> None:
    required = document["components"]["schemas"]["InputField"]["properties"]["required"]
    assert required["type"] == "boolean"
    assert "default" in required["description"]
    assert "system message" in required["description"]


def test_a_run_links_to_polling_and_cancelling_its_task(document: dict[str, Any]) -> None:
    links = document["paths"]["/api/workflows/runs"]["post"]["responses"]["200"]["links"]
    assert set(links) == {"GetTask", "CancelTask"}
    assert links["GetTask"]["parameters"] == {"task_id": "$response.body#/task_id"}


def test_with_an_api_key_every_operation_but_health_documents_the_bearer_key(
    tmp_path: Any,
) -> None:
    document = make_app(writer_compose(api_key="secret"), tmp_path).openapi()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for method, path, operation in operations(document):
        if path == "/api/health":
            assert "security" not in operation and "401" not in operation["responses"]
        else:
            assert operation["security"] == [{"apiKey": []}], f"{method} {path}"
            refused = operation["responses"]["401"]["content"]["application/json"]["schema"]
            shape = "OpenAIError" if path.startswith("/v1/") else "ErrorResponse"
            assert refused == {"$ref": f"#/components/schemas/{shape}"}, f"{method} {path}"
            waiting = operation["responses"]["429"]
            assert waiting["content"]["application/json"]["schema"] == refused
            assert waiting["headers"]["Retry-After"]["required"] is True
    assert "secret" not in str(document)


def test_without_a_key_the_document_asks_for_none(document: dict[str, Any]) -> None:
    assert "securitySchemes" not in document["components"]
    assert all("security" not in op for _, _, op in operations(document))


def test_a_wrong_method_on_a_v1_route_is_a_405_naming_the_allowed_ones(
    client: TestClient,
) -> None:
    response = client.put("/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {
        "error": {
            "message": "Method PUT is not allowed on /v1/chat/completions (allowed: POST)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert client.delete("/v1/models/writer").headers["allow"] == "GET"
    # A path /v1 does not serve at all is still OpenAI's 404.
    assert client.post("/v1/embeddings").status_code == 404


def test_a_v1_path_no_route_pattern_matches_still_answers_in_openai_shape(
    client: TestClient,
) -> None:
    # Starlette's path patterns stop at a newline: no /v1 route matches this.
    response = client.get("/v1/models/a%0Ab")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"prompt": "caf\xe9"}', "it is not UTF-8 text (byte 15 is b'\\xe9')"),
        (b"[" * 100_000, "it is nested too deeply"),
    ],
)
def test_a_body_that_cannot_be_read_as_json_says_why_on_both_apis(
    client: TestClient, body: bytes, reason: str
) -> None:
    headers = {"content-type": "application/json"}
    api = client.post("/api/workflows/runs", content=body, headers=headers)
    assert api.status_code == 400
    assert api.json()["error"]["message"] == f"the request body is not valid JSON: {reason}"
    v1 = client.post("/v1/completions", content=body, headers=headers)
    assert v1.status_code == 400
    assert v1.json()["error"]["message"] == f"The request body is not valid JSON: {reason}."


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stream", 0, "Invalid value for 'stream': input should be a valid boolean."),
        ("max_tokens", "4", "Invalid value for 'max_tokens': input should be a valid integer."),
        ("max_tokens", True, "Invalid value for 'max_tokens': input should be a valid integer."),
        ("max_tokens", 4.5, "Invalid value for 'max_tokens': input should be a valid integer."),
        ("temperature", "0", "Invalid value for 'temperature': input should be a valid number."),
    ],
)
def test_v1_fields_of_the_wrong_json_type_are_refused_not_guessed_at(
    client: TestClient, field: str, value: Any, message: str
) -> None:
    body = {"model": "writer", "prompt": "Hi", field: value}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message
    assert response.json()["error"]["param"] == field


def test_an_integral_float_is_an_integer_as_json_schema_says(client: TestClient) -> None:
    # Past validation, this request meets the server still loading (503),
    # where "max_tokens": 4.5 stopped at 400 above.
    body = {"model": "writer", "prompt": "Hi", "max_tokens": 4.0, "seed": 7.0}
    assert client.post("/v1/completions", json=body).status_code == 503
