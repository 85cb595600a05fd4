"""What /v1 accepts and refuses, and how an accepted body becomes an engine
request. The generation is a fake that records its requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime.engine.types import (
    FinishReason,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    Usage,
)
from runtime.workflow.context import RunContext
from tests.server.conftest import make_app

USER = [{"role": "user", "content": "Hi"}]


class FakeGenerate:
    """Stands in for `ModelComponents.generate`: answers "Hello world"."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, GenerationRequest]] = []

    async def __call__(
        self, component_id: str, request: GenerationRequest, context: RunContext
    ) -> GenerationResult:
        self.requests.append((component_id, request))
        for text in ("Hello", " world"):
            await context.delta(component_id, text, True)
        return GenerationResult("Hello world", FinishReason.STOP, Usage(5, 0, 2))


@pytest.fixture
def fake(
    client_for: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> tuple[TestClient, FakeGenerate]:
    client = client_for("quickstart")
    generate = FakeGenerate()
    monkeypatch.setattr(client.app.state.service.components, "generate", generate)  # type: ignore[attr-defined]
    return client, generate


def sent(
    fake: tuple[TestClient, FakeGenerate], path: str, body: dict[str, Any]
) -> GenerationRequest:
    client, generate = fake
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return generate.requests[-1][1]


def test_text_parts_are_joined_and_the_developer_role_is_a_system_message(fake: Any) -> None:
    request = sent(
        fake,
        "/v1/chat/completions",
        {
            "model": "__component__",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "One"}, {"type": "text", "text": "Two"}],
                },
                {"role": "assistant", "content": None},
            ],
        },
    )
    assert [(m.role, m.content) for m in request.messages or []] == [
        ("system", "Be brief."),
        ("user", "One\nTwo"),
        ("assistant", ""),
    ]


def test_openai_sampling_params_map_onto_the_engine_request(fake: Any) -> None:
    request = sent(
        fake,
        "/v1/chat/completions",
        {
            "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "messages": USER,
            "temperature": 0.5,
            "top_p": 0.9,
            "seed": 7,
            "stop": "END",
            "max_tokens": 99,
            "max_completion_tokens": 20,
            "top_k": 10,
            "frequency_penalty": 0,
            "presence_penalty": 0.0,
            "n": 1,
            "response_format": {"type": "text"},
            "user": "someone",
            "metadata": {"x": "y"},
        },
    )
    assert request.sampling == SamplingParams(temperature=0.5, top_p=0.9, top_k=10, seed=7)
    assert request.stop == ("END",)
    assert request.max_tokens == 20
    assert fake[1].requests[-1][0] == "__component__"


def test_temperature_zero_is_greedy_and_absent_params_keep_the_engine_defaults(
    fake: Any,
) -> None:
    greedy = sent(
        fake, "/v1/chat/completions", {"model": "__component__", "messages": USER, "temperature": 0}
    )
    assert greedy.sampling.greedy
    plain = sent(fake, "/v1/chat/completions", {"model": "__component__", "messages": USER})
    assert plain.sampling == SamplingParams()
    assert plain.stop == ()
    assert plain.max_tokens == 512  # the quickstart component's max_output_length


def test_a_text_completion_takes_one_prompt(fake: Any) -> None:
    request = sent(
        fake, "/v1/completions", {"model": "__component__", "prompt": ["Once"], "stop": ["a", "b"]}
    )
    assert request.prompt == "Once" and request.messages is None
    assert request.stop == ("a", "b")


def test_the_response_echoes_the_model_name_as_requested(fake: Any) -> None:
    client, _ = fake
    body = client.post(
        "/v1/completions",
        json={"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "prompt": "Hi", "echo": True},
    ).json()
    assert body["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert body["choices"] == [
        {"text": "HiHello world", "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]
    assert body["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


CHAT_REFUSALS = [
    ({"n": 2}, "n", "unsupported_value"),
    ({"functions": [{"name": "f"}]}, "functions", "unsupported_parameter"),
    ({"n": 0}, "n", None),
    ({"top_logprobs": 2}, "top_logprobs", None),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", None),
    ({"response_format": {"type": "xml"}}, "response_format.type", None),
    ({"mirostat": 3}, "mirostat", None),
    ({"frequency_penalty": 0.5}, "frequency_penalty", "unsupported_value"),
    ({"presence_penalty": -1}, "presence_penalty", "unsupported_value"),
    ({"logit_bias": {"50256": -100}}, "logit_bias", "unsupported_parameter"),
    ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role", "unsupported_value"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "messages[0].content",
        None,
    ),
    ({"messages": [{"role": "user"}]}, "messages[0].content", None),
    ({"messages": []}, "messages", None),
    ({"temperature": "hot"}, "temperature", None),
    ({"temperature": 3}, "temperature", None),
    ({"stop": 5}, "stop", None),
    ({"max_tokens": -1}, "max_tokens", None),
]


@pytest.mark.parametrize(("extra", "param", "code"), CHAT_REFUSALS)
def test_a_chat_request_the_server_cannot_honour_is_a_400_naming_the_field(
    fake: Any,
    extra: dict[str, Any],
    param: str,
    code: str | None,
) -> None:
    client, generate = fake
    response = client.post(
        "/v1/chat/completions", json={"model": "__component__", "messages": USER, **extra}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param and error["code"] == code
    assert f"'{param}'" in error["message"]
    assert generate.requests == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"best_of": 3}, "best_of"),
        ({"best_of": 0}, "best_of"),
        ({"suffix": "end"}, "suffix"),
        ({"logprobs": 2, "echo": True}, "logprobs"),
        ({"logprobs": 21}, "logprobs"),
    ],
)
def test_a_text_completion_the_server_cannot_honour_is_a_400(
    fake: Any,
    extra: dict[str, Any],
    param: str,
) -> None:
    response = fake[0].post(
        "/v1/completions", json={"model": "__component__", "prompt": "Hi", **extra}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_a_missing_field_is_named_in_openai_words(fake: Any) -> None:
    response = fake[0].post("/v1/chat/completions", json={"model": "__component__"})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Missing required parameter: 'messages'.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": None,
        }
    }


def test_a_body_that_is_not_json_is_a_400_in_openai_shape(fake: Any) -> None:
    response = fake[0].post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("The request body is not valid JSON")
    assert error["type"] == "invalid_request_error" and "code" in error and "param" in error


def test_an_unknown_v1_route_is_a_404_in_openai_shape(fake: Any) -> None:
    response = fake[0].post("/v1/embeddings", json={})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (POST /v1/embeddings)"


def test_the_api_answers_503_until_the_models_are_loaded() -> None:
    client = TestClient(make_app("quickstart"))  # no lifespan: the models never load
    response = client.post(
        "/v1/chat/completions", json={"model": "__component__", "messages": USER}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "server_error"
    assert client.get("/v1/models").json()["data"][0]["id"] == "__component__"
