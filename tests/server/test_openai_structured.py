"""Structured output on /v1, through the real `openai` client against a real
loopback server: `response_format` (json_object, json_schema, and the
client's `parse` with a pydantic model), llama-server's `grammar` and
`json_schema`, Mirostat; streaming and not, alone and four at once mixed
with free requests, on the embedded model and on the SmolLM3 stand-in;
every refusal a 400 naming the problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field

from runtime.server.openai_errors import OpenAIRequestError
from runtime.server.openai_structured import answer_grammar
from tests.server.conftest import LiveServer

COMPOSE = """
controller:
  base_path: /api
components:
  - id: chat
    type: model
    task: chat-completion
    model: {model}
    context_length: 1024
    parallel: 4
    action:
      messages:
        - role: user
          content: ${{input.question}}
"""
EMBEDDED = COMPOSE.format(model="HuggingFaceTB/SmolLM2-135M-Instruct")

# Bounded everywhere, so that every answer ends well inside max_tokens.
CITY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "country": {"type": "string", "maxLength": 30},
        "population": {"type": "integer"},
        "capital": {"type": "boolean"},
    },
    "required": ["name", "country", "population", "capital"],
    "additionalProperties": False,
}
QUESTIONS = [
    "Describe Paris.",
    "Tell me about Tokyo.",
    "What is the biggest city in Brazil?",
    "Write a poem about London.",
    "Say hello.",
    "Give me a city you like.",
]


class Cat(BaseModel):
    name: str = Field(max_length=20)
    color: Literal["black", "white", "orange", "grey"]
    age: int


@pytest.fixture
def server(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server(EMBEDDED)


def client_of(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def client(server: LiveServer) -> OpenAI:
    return client_of(server)


def city_format() -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}}


def valid(text: str | None, schema: dict[str, Any]) -> Any:
    assert text is not None
    value = json.loads(text)
    jsonschema.validate(value, schema)
    return value


def test_parse_with_a_pydantic_model_gives_the_model_back(client: OpenAI) -> None:
    reply = client.chat.completions.parse(
        model="chat",
        messages=[{"role": "user", "content": "Describe a cat."}],
        response_format=Cat,
        temperature=0,
        max_tokens=120,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, Cat)
    assert Cat.model_validate_json(choice.message.content or "") == choice.message.parsed


def test_a_json_schema_answer_validates_on_many_questions_sampled(client: OpenAI) -> None:
    for seed, question in enumerate(QUESTIONS):
        reply = client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": question}],
            response_format=city_format(),  # type: ignore[arg-type]
            temperature=0.8,
            seed=seed,
            max_tokens=150,
        )
        assert reply.choices[0].finish_reason == "stop"
        valid(reply.choices[0].message.content, CITY)


def test_a_streamed_json_schema_answer_validates_once_joined(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Describe Rome."}],
        response_format=city_format(),  # type: ignore[arg-type]
        temperature=0,
        max_tokens=150,
        stream=True,
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    valid("".join(c.choices[0].delta.content or "" for c in chunks if c.choices), CITY)


def test_json_object_gives_a_json_object(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Describe a cat in JSON with keys name and color."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=150,
    )
    assert isinstance(valid(reply.choices[0].message.content, {"type": "object"}), dict)


def test_llama_servers_grammar_and_json_schema_work_on_completions_too(client: OpenAI) -> None:
    reply = client.completions.create(
        model="chat",
        prompt="Is the sky blue? Answer:",
        max_tokens=8,
        temperature=0,
        extra_body={"grammar": 'root ::= " " ("yes" | "no")'},
    )
    assert reply.choices[0].text in (" yes", " no") and reply.choices[0].finish_reason == "stop"
    reply = client.completions.create(
        model="chat",
        prompt="The city of Paris as JSON:",
        max_tokens=150,
        temperature=0,
        extra_body={"json_schema": CITY},
    )
    valid(reply.choices[0].text, CITY)


def test_four_concurrent_requests_mixed_constrained_and_free_each_get_theirs(
    client: OpenAI,
) -> None:
    def ask(index: int) -> tuple[int, str | None, str | None]:
        constrained = index % 2 == 0
        extra: dict[str, Any] = {"response_format": city_format()} if constrained else {}
        reply = client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": QUESTIONS[index]}],
            temperature=0,
            max_tokens=150,
            stream=index == 2,
            **extra,
        )
        if index == 2:
            chunks = list(reply)  # type: ignore[arg-type]
            return (
                index,
                "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
                None,
            )
        return index, reply.choices[0].message.content, reply.choices[0].finish_reason  # type: ignore[union-attr]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(4)))
    for index, text, _ in answers:
        if index % 2 == 0:
            valid(text, CITY)
        else:
            assert text and not text.lstrip().startswith("{")


def test_mirostat_is_honoured(client: OpenAI) -> None:
    def ask() -> str | None:
        reply = client.completions.create(
            model="chat",
            prompt="Once upon a time",
            max_tokens=12,
            seed=3,
            extra_body={"mirostat": 2, "mirostat_tau": 3.0, "mirostat_eta": 0.2},
        )
        return reply.choices[0].text

    first = ask()
    assert first and ask() == first


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "n", "schema": {"type": "integer", "minimum": 0}},
                }
            },
            "response_format.json_schema.schema",
            "Invalid schema for response_format 'n': JSON schema: 'minimum' is not supported",
        ),
        ({"response_format": {"type": "xml"}}, "response_format.type", "'xml'; use one of"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "Missing"),
        (
            {"grammar": 'root ::= "a" b'},
            "grammar",
            "Invalid grammar: line 1, column 14: undefined rule 'b'",
        ),
        ({"json_schema": {"type": "strnig"}}, "json_schema", "'strnig' is not a type"),
        (
            {"grammar": 'root ::= "a"', "response_format": {"type": "json_object"}},
            "grammar",
            "Only one of 'response_format', 'grammar' may be given",
        ),
        (
            {"grammar": "", "json_schema": {"type": "object"}},
            "json_schema",
            "Only one of 'grammar', 'json_schema' may be given",
        ),
        ({"mirostat": 3}, "mirostat", "less than or equal to 2"),
        # Only the model's llama.cpp can tell these: the engine refuses them.
        ({"grammar": 'root ::= root "a" | "b"'}, "grammar", "left recursion"),
        (
            {"grammar": "root ::= [^\\x00-\\U0010FFFF]"},
            "grammar",
            "allows no next token at the start",
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_what_cannot_be_honoured_is_a_400_naming_the_problem(
    server: LiveServer, extra: dict[str, Any], param: str, words: str, stream: bool
) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
    response = httpx.post(
        server.url + "/v1/chat/completions", json={**body, **extra, "stream": stream}, timeout=60
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert words in error["message"] and error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_a_grammar_that_dead_ends_midway_ends_the_stream_with_an_error_saying_so(
    client: OpenAI,
) -> None:
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        extra_body={"grammar": 'root ::= "ok" [^\\x00-\\U0010FFFF]'},
    )
    text = ""
    with pytest.raises(openai.APIError, match="allows no next token after 'ok'"):
        for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert text == "ok"


def test_the_openai_client_raises_a_bad_request_for_an_unusable_schema(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "Hi"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"not": {}}},
            },
        )
    assert caught.value.code == "invalid_json_schema"


def test_a_text_response_format_constrains_nothing() -> None:
    assert answer_grammar({"type": "text"}, None, None) is None
    assert answer_grammar(None, "", None) is None  # llama-server: an empty grammar is none
    with pytest.raises(OpenAIRequestError, match="Missing required parameter"):
        answer_grammar({}, None, None)


@pytest.fixture
def smollm3_server(live_server: Callable[..., LiveServer], smollm3_model_path: Path) -> LiveServer:
    return live_server(COMPOSE.format(model=smollm3_model_path))


def test_the_smollm3_stand_in_answers_schema_valid_json_after_its_reasoning(
    smollm3_server: LiveServer,
) -> None:
    """Random weights, SmolLM3's vocabulary and template: reasoning first (the
    prefilled block, closed by the budget), then JSON the schema accepts."""
    client = client_of(smollm3_server)
    reply = client.chat.completions.parse(
        model="chat",
        messages=[
            {"role": "user", "content": "Describe a cat."},
            {"role": "assistant", "content": "<think>\n"},
        ],
        response_format=Cat,
        temperature=0.7,
        seed=1,
        max_tokens=200,
        extra_body={"reasoning_budget": 8},
    )
    message = reply.choices[0].message
    assert message.reasoning_content  # type: ignore[attr-defined]
    assert isinstance(message.parsed, Cat)


def test_the_smollm3_stand_in_keeps_four_mixed_requests_apart(smollm3_server: LiveServer) -> None:
    client = client_of(smollm3_server)

    def ask(index: int) -> tuple[int, str | None, str | None]:
        extra: dict[str, Any] = {"response_format": city_format()} if index % 2 == 0 else {}
        reply = client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": QUESTIONS[index]}],
            temperature=1.0,
            seed=index,
            max_tokens=150 if index % 2 == 0 else 12,
            extra_body={"chat_template_kwargs": {"enable_thinking": False}},
            **extra,
        )
        return index, reply.choices[0].message.content, reply.choices[0].finish_reason

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(4)))
    for index, text, finish in answers:
        if index % 2 == 0:
            assert finish == "stop"
            valid(text, CITY)
