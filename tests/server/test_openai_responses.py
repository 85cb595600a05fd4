"""POST /v1/responses (OpenAI's Responses API) through the real `openai`
client (`responses.create`, `responses.stream`) against a real server on the
embedded model: text in, the answer as a message item, its events streamed
in OpenAI's order, reasoning as a reasoning item, logprobs, and 400s naming
what this server does not do."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI

from tests.server.conftest import LiveServer

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
INSTRUCTIONS = "You are a helpful assistant."
QUESTION = "What is the capital of France?"

COMPOSE = """
controller:
  base_path: /api
workflows:
  - id: ask
    job:
      component: plain
components:
  - id: plain
    type: model
    task: chat-completion
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    messages:
      - role: user
        content: ${input.question}
  - id: capped
    type: model
    task: chat-completion
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    messages:
      - role: user
        content: ${input.question}
    max_output_length: 5
  - id: thinker
    type: model
    task: chat-completion
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    reasoning_budget: 5
    messages:
      - role: user
        content: ${input.question}
"""
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
WEATHER_QUESTION = "What is the weather like in Paris?"
# The embedded model does not think by itself: a prefilled open block makes it.
THINKING = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>\n"},
]


@pytest.fixture
def server(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server(COMPOSE)


@pytest.fixture
def client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_a_response_answers_the_input_as_a_message(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, instructions=INSTRUCTIONS, input=QUESTION, temperature=0
    )
    assert "Paris" in response.output_text
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == MODEL
    assert response.instructions == INSTRUCTIONS and response.temperature == 0
    [message] = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert message.role == "assistant" and message.status == "completed"
    assert message.content[0].type == "output_text"
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0


def test_it_is_the_same_generation_as_the_chat_completion(client: OpenAI) -> None:
    chat = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": QUESTION},
        ],
        temperature=0,
    )
    response = client.responses.create(
        model=MODEL,
        instructions=INSTRUCTIONS,
        input=[{"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}],
        temperature=0,
    )
    assert response.output_text == chat.choices[0].message.content
    assert response.usage.input_tokens == chat.usage.prompt_tokens  # type: ignore[union-attr]


def test_earlier_turns_come_back_as_input_items(client: OpenAI) -> None:
    first = client.responses.create(
        model=MODEL, instructions=INSTRUCTIONS, input=QUESTION, temperature=0
    )
    # What clients (openai-agents) send back: the output items as they came.
    history: list[Any] = [
        {"role": "user", "content": QUESTION},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"role": "user", "content": "And of Germany?"},
    ]
    second = client.responses.create(
        model=MODEL, instructions=INSTRUCTIONS, input=history, temperature=0
    )
    assert "Berlin" in second.output_text
    assert second.usage.input_tokens > first.usage.input_tokens  # type: ignore[union-attr]


def test_max_output_tokens_cuts_the_response_as_incomplete(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, input="Write a long story about a dragon.", max_output_tokens=5
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert response.usage.output_tokens == 5  # type: ignore[union-attr]


def test_without_max_output_tokens_the_components_max_output_length_holds(
    client: OpenAI,
) -> None:
    response = client.responses.create(model="capped", input="Write a long story.")
    assert response.usage.output_tokens == 5  # type: ignore[union-attr]


def test_the_stream_builds_the_same_response_in_openais_order(client: OpenAI) -> None:
    params: dict[str, Any] = {
        "model": MODEL,
        "instructions": INSTRUCTIONS,
        "input": QUESTION,
        "temperature": 0,
    }
    whole = client.responses.create(**params)
    with client.responses.stream(**params) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == whole.output_text
    assert final.id == events[0].response.id  # type: ignore[union-attr]
    assert final.usage.output_tokens == whole.usage.output_tokens  # type: ignore[union-attr]


def test_each_event_is_named_as_its_type_and_there_is_no_done_marker(server: LiveServer) -> None:
    body = {"model": MODEL, "input": "Hi", "max_output_tokens": 3, "stream": True}
    names, types = [], []
    with httpx.stream("POST", server.url + "/v1/responses", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                names.append(line[len("event: ") :])
            elif line.startswith("data: "):
                types.append(json.loads(line[len("data: ") :])["type"])
    assert names == types and types[-1] == "response.incomplete"


def test_reasoning_comes_as_a_reasoning_item_before_the_message(client: OpenAI) -> None:
    params: dict[str, Any] = {
        "model": "thinker",
        "input": THINKING,
        "temperature": 0,
        "max_output_tokens": 30,
    }
    response = client.responses.create(**params)
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert reasoning.content and reasoning.content[0].type == "reasoning_text"
    assert reasoning.content[0].text and reasoning.summary == []
    assert message.type == "message" and "think>" not in response.output_text
    assert response.usage.output_tokens_details.reasoning_tokens > 5  # type: ignore[union-attr]
    with client.responses.stream(**params) as stream:
        events = list(stream)
        final = stream.get_final_response()
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert thought == reasoning.content[0].text
    assert final.output_text == response.output_text
    kinds = [e.type for e in events]
    last_thought = max(i for i, k in enumerate(kinds) if k == "response.reasoning_text.delta")
    first_answer = kinds.index("response.output_text.delta")
    assert kinds[last_thought + 1 : first_answer] == [
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
    ]


def test_logprobs_come_with_the_output_text_when_included(client: OpenAI) -> None:
    params: dict[str, Any] = {
        "model": MODEL,
        "instructions": INSTRUCTIONS,
        "input": QUESTION,
        "temperature": 0,
        "include": ["message.output_text.logprobs"],
        "top_logprobs": 2,
    }
    response = client.responses.create(**params)
    text = response.output[0].content[0]  # type: ignore[union-attr]
    assert text.logprobs and "".join(t.token for t in text.logprobs) == text.text
    assert all(len(t.top_logprobs) == 2 for t in text.logprobs)
    with client.responses.stream(**params) as stream:
        streamed = [
            t.token for e in stream if e.type == "response.output_text.delta" for t in e.logprobs
        ]
    assert streamed == [t.token for t in text.logprobs]
    plain = client.responses.create(model=MODEL, input=QUESTION, max_output_tokens=3)
    assert plain.output[0].content[0].logprobs == []  # type: ignore[union-attr]


REFUSED = [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "no spaces"}]}, "tools[0].name"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"text": {"format": {"type": "xml"}}}, "text.format"),
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"background": True}, "background"),
    ({"truncation": "auto"}, "truncation"),
    (
        {"input": [{"type": "computer_call_output", "call_id": "c", "output": {}}]},
        "input[0].type",
    ),
    (
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": 1}]},
        "input[0].arguments",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
        "input[0].content[0]",
    ),
    ({"input": [{"type": "reasoning", "summary": []}]}, "input"),
    ({"input": [{"type": "message", "role": {}, "content": ""}]}, "input[0].role"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"top_logprobs": 21}, "top_logprobs"),
]


@pytest.mark.parametrize(("extra", "param"), REFUSED)
def test_what_this_server_cannot_do_is_a_400_naming_it(
    client: OpenAI, extra: dict[str, Any], param: str
) -> None:
    body = {"model": MODEL, "input": "Hi", **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**body)
    assert caught.value.param == param
    assert f"'{param}'" in caught.value.message


def test_fields_it_has_no_use_for_are_ignored(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input="Hi",
        max_output_tokens=2,
        store=True,
        metadata={"run": "1"},
        user="someone",
        parallel_tool_calls=True,
        tools=[],
        tool_choice="auto",
        text={"format": {"type": "text"}},
        include=["reasoning.encrypted_content"],
        reasoning={"effort": "low", "summary": "auto"},
        extra_body={"service_tier": "auto", "some_future_field": 1},
    )
    assert response.status == "incomplete" and response.metadata == {"run": "1"}


def test_errors_have_openais_shape(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="gpt-4o", input="Hi")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.responses.create(model=MODEL, input="hello " * 5000, stream=True)
    assert too_long.value.code == "context_length_exceeded"
    assert too_long.value.param == "input"


def test_reasoning_effort_none_turns_thinking_off_as_on_chat(
    live_server: Callable[..., LiveServer], smollm3_model_path: Path
) -> None:
    # The SmolLM3 stand-in's template writes its prompt differently without thinking.
    server = live_server(
        f"""
        controller:
          base_path: /api
        component:
          type: model
          task: chat-completion
          model: {smollm3_model_path}
          messages:
            - role: user
              content: ${{input.question}}
        """
    )
    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    ask: dict[str, Any] = {"model": "__component__", "max_output_tokens": 1}
    thinking = client.responses.create(**ask, input="Hi")
    not_thinking = client.responses.create(**ask, input="Hi", reasoning={"effort": "none"})
    chat = client.chat.completions.create(
        model="__component__",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=1,
        reasoning_effort="none",  # type: ignore[arg-type]
    )
    assert not_thinking.usage.input_tokens != thinking.usage.input_tokens  # type: ignore[union-attr]
    assert not_thinking.usage.input_tokens == chat.usage.prompt_tokens  # type: ignore[union-attr]
    assert not_thinking.reasoning.effort == "none"  # type: ignore[union-attr]


def test_a_required_tool_call_comes_as_a_function_call_item(client: OpenAI) -> None:
    # Greedy: sampled, the model may go on calling until the output is cut.
    response = client.responses.create(
        model=MODEL,
        input=WEATHER_QUESTION,
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and all(call.name == "get_weather" for call in calls)
    assert all(isinstance(json.loads(call.arguments)["city"], str) for call in calls)
    call = calls[0]
    assert call.id is not None and call.id.startswith("fc_")
    assert call.call_id.startswith("call_") and call.status == "completed"
    assert response.status == "completed" and response.tool_choice == "required"
    assert [tool.name for tool in response.tools] == ["get_weather"]  # type: ignore[union-attr]


def test_a_named_function_choice_makes_one_call_to_it(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=WEATHER_QUESTION,
        tools=[WEATHER, {**WEATHER, "name": "get_time"}],
        tool_choice={"type": "function", "name": "get_time"},
    )
    [call] = [item for item in response.output if item.type == "function_call"]
    assert call.name == "get_time"


def test_a_streamed_call_is_announced_given_its_arguments_and_done(client: OpenAI) -> None:
    params: dict[str, Any] = {
        "model": MODEL,
        "input": WEATHER_QUESTION,
        "tools": [WEATHER],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 0,
    }
    with client.responses.stream(**params) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-5:] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added, delta, done, item_done = events[-5:-1]
    assert added.item.type == "function_call" and added.item.status == "in_progress"  # type: ignore[union-attr]
    assert delta.item_id == done.item_id == added.item.id  # type: ignore[union-attr]
    assert done.arguments == delta.delta  # type: ignore[union-attr]
    assert item_done.item.arguments == done.arguments  # type: ignore[union-attr]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    [call] = [item for item in final.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)["city"]


def test_a_function_output_sent_back_is_answered_in_text(client: OpenAI) -> None:
    first = client.responses.create(
        model=MODEL,
        input=WEATHER_QUESTION,
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    history: list[Any] = [
        {"role": "user", "content": WEATHER_QUESTION},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"},
    ]
    second = client.responses.create(
        model=MODEL, input=history, tools=[WEATHER], tool_choice="none", max_output_tokens=30
    )
    assert [item.type for item in second.output] == ["message"]
    assert second.output_text


def test_the_tool_history_is_the_chat_completions(client: OpenAI) -> None:
    arguments = '{"city": "Paris"}'
    history: list[Any] = [
        {"role": "user", "content": WEATHER_QUESTION},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": arguments,
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 24 C"},
    ]
    response = client.responses.create(
        model=MODEL, input=history, tools=[WEATHER], temperature=0, max_output_tokens=20
    )
    chat = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": WEATHER_QUESTION},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 C"},
        ],
        tools=[
            {
                "type": "function",
                "function": {k: v for k, v in WEATHER.items() if k != "type"},  # type: ignore[misc]
            }
        ],
        temperature=0,
        max_completion_tokens=20,
    )
    message = chat.choices[0].message
    assert response.output_text == (message.content or "")
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [
        (c.function.name, c.function.arguments)  # type: ignore[union-attr]
        for c in message.tool_calls or []
    ]


def test_a_json_schema_text_format_gives_json_valid_against_it(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=MODEL,
        input="Describe Paris.",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
        max_output_tokens=60,
    )
    assert response.status == "completed"
    jsonschema.validate(json.loads(response.output_text), schema)
    assert response.text.format.type == "json_schema"  # type: ignore[union-attr]


def test_a_json_object_text_format_gives_a_json_object(client: OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input="Describe Paris as JSON.",
        text={"format": {"type": "json_object"}},
        max_output_tokens=60,
    )
    if response.status == "completed":  # a cut object is not whole JSON
        assert isinstance(json.loads(response.output_text), dict)
    assert response.text.format.type == "json_object"  # type: ignore[union-attr]
