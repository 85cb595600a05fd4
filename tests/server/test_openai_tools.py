"""Tool calling on /v1/chat/completions, the request's side: what `tools`,
`tool_choice`, `parallel_tool_calls` and a tool history make of the engine
request, and the 400s for what cannot be honoured, each naming its field.
The generation is a fake that records its requests (the answers, on real
models, are tests/server/test_openai_tool_calls.py's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime.engine.llama.tool_grammar import tool_call_grammar
from runtime.engine.types import ChatMessage, GenerationRequest, ToolCall
from tests.server.test_openai_requests import FakeGenerate

USER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME = {"name": "get_time"}
TOOLS = [{"type": "function", "function": WEATHER}, {"type": "function", "function": TIME}]


@pytest.fixture
def fake(
    client_for: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> tuple[TestClient, FakeGenerate]:
    client = client_for("quickstart")
    generate = FakeGenerate()
    monkeypatch.setattr(client.app.state.service.components, "generate", generate)  # type: ignore[attr-defined]
    return client, generate


def sent(fake: tuple[TestClient, FakeGenerate], **body: Any) -> GenerationRequest:
    client, generate = fake
    response = client.post(
        "/v1/chat/completions", json={"model": "__component__", "messages": USER, **body}
    )
    assert response.status_code == 200, response.text
    return generate.requests[-1][1]


def test_with_tools_the_template_gets_the_functions_and_nothing_is_forced(fake: Any) -> None:
    request = sent(fake, tools=TOOLS)
    assert request.tools == [WEATHER, TIME]
    assert request.grammar is None
    auto = sent(fake, tools=TOOLS, tool_choice="auto")
    assert (auto.tools, auto.grammar) == (request.tools, None)


def test_tool_choice_none_leaves_the_tools_out_of_the_prompt(fake: Any) -> None:
    request = sent(fake, tools=TOOLS, tool_choice="none")
    assert request.tools is None and request.grammar is None


def test_a_required_call_is_forced_by_the_grammar_of_any_function(fake: Any) -> None:
    request = sent(fake, tools=TOOLS, tool_choice="required")
    assert request.tools == [WEATHER, TIME]
    assert request.grammar == tool_call_grammar([WEATHER, TIME], parallel=True)
    one = sent(fake, tools=TOOLS, tool_choice="required", parallel_tool_calls=False)
    assert one.grammar == tool_call_grammar([WEATHER, TIME], parallel=False)


def test_a_named_function_forces_one_call_to_it(fake: Any) -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    request = sent(fake, tools=TOOLS, tool_choice=choice)
    assert request.tools == [WEATHER, TIME]  # the model still sees them all
    assert request.grammar == tool_call_grammar([WEATHER], parallel=False)


def test_calls_and_results_in_the_history_reach_the_engine(fake: Any) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    history = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "22 C"}]},
    ]
    request = sent(fake, messages=history, tools=TOOLS)
    assert request.messages == [
        ChatMessage("user", USER[0]["content"]),
        ChatMessage("assistant", "", (ToolCall("get_weather", '{"city": "Paris"}', "call_1"),)),
        ChatMessage("tool", "22 C", tool_call_id="call_1"),
    ]


def test_a_history_with_calls_is_accepted_without_tools(fake: Any) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        *USER,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "content": "ok"},
    ]
    request = sent(fake, messages=messages)
    assert request.tools is None
    assert request.messages is not None and request.messages[1].tool_calls == (
        ToolCall("f", "{}", "c"),
    )


def named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def with_parameters(parameters: Any) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "f", "parameters": parameters}}]


UNREADABLE = {"type": "object", "properties": {"a": {"type": "nope"}}}
TOOL_REFUSALS = [
    ({"tool_choice": "required"}, "tool_choice", None),
    ({"tool_choice": named("get_weather")}, "tool_choice", None),
    ({"tools": TOOLS, "tool_choice": named("launch")}, "tool_choice", "unknown_function"),
    ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice", None),
    ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice.function", None),
    (
        {"tools": [{"type": "function", "function": {"name": "a b"}}]},
        "tools[0].function.name",
        None,
    ),
    ({"tools": [{"type": "custom", "function": TIME}]}, "tools[0].type", None),
    ({"tools": [{"type": "function"}]}, "tools[0].function", None),
    ({"tools": with_parameters({"type": "string"})}, "tools[0].function.parameters", None),
    ({"tools": with_parameters([1])}, "tools[0].function.parameters", None),
    (
        {"tools": [*TOOLS, *with_parameters(UNREADABLE)], "tool_choice": "required"},
        "tools[2].function.parameters",
        "invalid_function_parameters",
    ),
    ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls", None),
    (
        {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}]},
        "messages[0].tool_calls[0].function",
        None,
    ),
    (
        {"messages": [{"role": "assistant", "tool_calls": [named("f")]}]},
        "messages[0].tool_calls[0].id",
        None,
    ),
    ({"messages": [{"role": "tool", "content": None}]}, "messages[0].content", None),
]


@pytest.mark.parametrize(("extra", "param", "code"), TOOL_REFUSALS)
def test_tool_settings_that_cannot_be_honoured_are_a_400_naming_the_field(
    fake: Any, extra: dict[str, Any], param: str, code: str | None
) -> None:
    client, generate = fake
    response = client.post(
        "/v1/chat/completions", json={"model": "__component__", "messages": USER, **extra}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert f"'{param}'" in error["message"]
    assert generate.requests == []


def test_an_unreadable_schema_names_its_function_and_why(fake: Any) -> None:
    body = {"messages": USER, "tools": with_parameters(UNREADABLE), "tool_choice": named("f")}
    response = fake[0].post("/v1/chat/completions", json={"model": "__component__", **body})
    message = response.json()["error"]["message"]
    assert "function 'f'" in message and "nope" in message
