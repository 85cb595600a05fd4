"""Tool calls from a real server, seen through the real `openai` client: on
the embedded model (SmolLM2-135M) and on the SmolLM3 stand-in, whole and
streamed (the client's own stream accumulation rebuilds the calls), over two
rounds (call → result → answer), and under concurrent load.

The embedded model calls a function by itself when the conversation shows it
how (three earlier rounds of the same kind, greedy): that exercises `auto`
with no constraint at all. On the stand-in, a request's tools make exactly
transformers' SmolLM3 prompt (`xml_tools`). It has random weights: it calls
only when the call is forced (`tool_choice` "required" or a named function),
which the engine's grammar sampler does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import llama_cpp
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessage

from runtime.engine.llama.vocab import Vocabulary
from tests.engine.llama.test_smollm3_template import (
    GOLDEN_TOOL_HISTORY,
    GOLDEN_TOOLS_NO_THINK,
    WEATHER_QUESTION,
)
from tests.engine.llama.test_smollm3_template import WEATHER as GOLDEN_WEATHER
from tests.server.conftest import LiveServer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the local time in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOLS = [WEATHER, TIME]


def past_round(index: int, city: str) -> list[dict[str, Any]]:
    """One earlier round: a question, the call, its result, the answer."""
    call = {
        "id": f"call_{index}",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
    }
    return [
        {"role": "user", "content": f"What is the weather in {city}?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"call_{index}", "content": "15 C, cloudy"},
        {"role": "assistant", "content": f"It is 15 C and cloudy in {city}."},
    ]


SHOWN_HOW = [m for i, city in enumerate(["London", "Rome", "Berlin"]) for m in past_round(i, city)]
PARIS = [*SHOWN_HOW, {"role": "user", "content": "What is the weather in Paris?"}]
GREETING = [*SHOWN_HOW, {"role": "user", "content": "Hello! Who are you?"}]

EMBEDDED = """
controller:
  base_path: /api
components:
  - id: chat
    type: model
    task: chat-completion
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    context_length: 2048
    parallel: 4
"""
STANDIN = """
controller:
  base_path: /api
components:
  - id: smollm3
    type: model
    task: chat-completion
    model: {path}
    context_length: 2048
    parallel: 2
"""


QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
# Greedy: random weights sampled at a temperature ramble inside a string.
ON_STANDIN = {"model": "smollm3", "temperature": 0, "extra_body": {"reasoning_effort": "none"}}


def client_of(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def client(live_server: Callable[..., LiveServer]) -> OpenAI:
    return client_of(live_server(EMBEDDED))


@pytest.fixture
def smollm3(live_server: Callable[..., LiveServer], smollm3_model_path: Path) -> OpenAI:
    return client_of(live_server(STANDIN.format(path=smollm3_model_path)))


def ask(client: OpenAI, messages: list[dict[str, Any]], **params: Any) -> ChatCompletion:
    params = {"model": "chat", "temperature": 0, "max_tokens": 60, "tools": TOOLS, **params}
    return client.chat.completions.create(messages=messages, **params)  # type: ignore[call-overload,no-any-return]


def streamed(client: OpenAI, messages: list[dict[str, Any]], **params: Any) -> ChatCompletion:
    """The completion the openai client accumulates from the stream."""
    params = {"model": "chat", "temperature": 0, "max_tokens": 60, "tools": TOOLS, **params}
    with client.chat.completions.stream(messages=messages, **params) as stream:  # type: ignore[arg-type]
        for _ in stream:
            pass
        return stream.get_final_completion()  # type: ignore[return-value]


def today(golden: str) -> str:
    """A golden SmolLM3 prompt (dated 08 July 2025) as the server writes it today."""
    return golden.replace("08 July 2025", datetime.now().strftime("%d %B %Y"))


def encode(path: Path, text: str) -> list[int]:
    """`text` in the tokens of the model at `path` (its vocabulary only)."""
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    try:
        return Vocabulary(model).encode(text)
    finally:
        llama_cpp.llama_model_free(model)


def calls(message: ChatCompletionMessage) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of each call; every call is well formed."""
    found = []
    for call in message.tool_calls or []:
        assert call.type == "function"
        assert call.id.startswith("call_") and len(call.id) > len("call_")
        found.append((call.function.name, json.loads(call.function.arguments)))  # type: ignore[union-attr]
    return found


# -- the embedded model, unconstrained (auto) --------------------------------------


def test_a_model_that_calls_a_function_gets_tool_calls_and_no_content(client: OpenAI) -> None:
    reply = ask(client, PARIS)
    choice = reply.choices[0]
    assert calls(choice.message) == [("get_weather", {"city": "Paris"})]
    assert choice.message.content is None
    assert choice.finish_reason == "tool_calls"


def test_a_streamed_call_is_rebuilt_by_the_client_as_the_same_call(client: OpenAI) -> None:
    whole = ask(client, PARIS).choices[0]
    rebuilt = streamed(client, PARIS).choices[0]
    assert calls(rebuilt.message) == calls(whole.message) == [("get_weather", {"city": "Paris"})]
    assert not rebuilt.message.content
    assert rebuilt.finish_reason == "tool_calls"


def test_a_streamed_call_comes_as_openai_streams_one(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=PARIS,
            tools=TOOLS,
            temperature=0,
            max_tokens=60,
            stream=True,  # type: ignore[arg-type]
        )
    )
    deltas = [chunk.choices[0].delta.tool_calls for chunk in chunks if chunk.choices]
    pieces = [piece for delta in deltas if delta for piece in delta]
    head, *rest = pieces
    assert (head.index, head.type, head.function.name) == (0, "function", "get_weather")  # type: ignore[union-attr]
    assert head.id and head.function.arguments == ""  # type: ignore[union-attr]
    assert all(piece.index == 0 and piece.id is None for piece in rest)
    arguments = "".join(piece.function.arguments or "" for piece in rest)  # type: ignore[union-attr]
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_model_that_answers_instead_gets_content_and_stops(client: OpenAI) -> None:
    for reply in (ask(client, GREETING), streamed(client, GREETING)):
        choice = reply.choices[0]
        assert choice.message.content and choice.message.tool_calls in (None, [])
        assert choice.finish_reason in ("stop", "length")


def test_with_tool_choice_none_a_call_the_model_writes_stays_text(client: OpenAI) -> None:
    # The history still shows calls, so the model writes one; it is not parsed.
    reply = ask(client, PARIS, tool_choice="none").choices[0]
    assert reply.message.tool_calls is None
    assert "<tool_call>" in (reply.message.content or "")
    assert reply.finish_reason == "stop"


def test_a_two_round_conversation_calls_then_answers_from_the_result(client: OpenAI) -> None:
    first = ask(client, PARIS).choices[0].message
    assert calls(first) == [("get_weather", {"city": "Paris"})]
    call = first.tool_calls[0]  # type: ignore[index]
    history = [
        *PARIS,
        first,  # sent back as it came, as OpenAI's examples do
        {"role": "tool", "tool_call_id": call.id, "content": "22 C, sunny"},
    ]
    answer = ask(client, history).choices[0]
    assert answer.finish_reason == "stop"
    assert answer.message.tool_calls is None
    assert "22 C" in (answer.message.content or "")


def test_four_concurrent_requests_with_and_without_tools_each_get_their_own_answer(
    client: OpenAI,
) -> None:
    def with_tools(_: int) -> ChatCompletion:
        return streamed(client, PARIS)

    def plain(_: int) -> ChatCompletion:
        return ask(client, [{"role": "user", "content": "Hi!"}], tools=None, max_tokens=20)

    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(job, i) for i, job in enumerate([with_tools, plain] * 2)]
        replies = [job.result().choices[0] for job in jobs]
    for reply in replies[0::2]:
        assert calls(reply.message) == [("get_weather", {"city": "Paris"})]
        assert reply.finish_reason == "tool_calls"
    for reply in replies[1::2]:
        assert reply.message.tool_calls is None and reply.message.content


# -- the SmolLM3 stand-in ---------------------------------------------------------


def test_the_standin_gets_the_tools_in_smollm3s_own_prompt(
    smollm3: OpenAI, smollm3_model_path: Path
) -> None:
    reply = ask(
        smollm3,
        [{"role": "user", "content": WEATHER_QUESTION.content}],
        **ON_STANDIN,
        tools=[{"type": "function", "function": GOLDEN_WEATHER}],
        max_tokens=1,
    )
    # The golden is transformers' rendering of `xml_tools=[GOLDEN_WEATHER]`.
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(
        encode(smollm3_model_path, today(GOLDEN_TOOLS_NO_THINK))
    )


def test_the_standin_reads_a_call_and_its_result_as_smollm3_wrote_and_read_them(
    smollm3: OpenAI, smollm3_model_path: Path
) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    history = [
        {"role": "user", "content": WEATHER_QUESTION.content},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": '{"temperature": 22, "sky": "sunny"}',
        },
    ]
    tools = [{"type": "function", "function": GOLDEN_WEATHER}]
    reply = ask(smollm3, history, **ON_STANDIN, tools=tools, max_tokens=1)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(encode(smollm3_model_path, today(GOLDEN_TOOL_HISTORY)))


# -- forced calls (the engine's grammar) ---------------------------------------------


def test_a_required_call_always_parses_on_the_embedded_model(client: OpenAI) -> None:
    question = [{"role": "user", "content": "Hello! Who are you?"}]
    options = {"tool_choice": "required", "parallel_tool_calls": False}
    for reply in (ask(client, question, **options), streamed(client, question, **options)):
        choice = reply.choices[0]
        assert [name for name, _ in calls(choice.message)] in (["get_weather"], ["get_time"])
        assert not choice.message.content
        assert choice.finish_reason == "tool_calls"


def test_required_calls_in_parallel_all_parse(client: OpenAI) -> None:
    question = [{"role": "user", "content": "What is the weather in Paris and the time in Tokyo?"}]
    for reply in (
        ask(client, question, tool_choice="required", max_tokens=200),
        streamed(client, question, tool_choice="required", max_tokens=200),
    ):
        choice = reply.choices[0]
        assert calls(choice.message) == [
            ("get_weather", {"city": "Paris"}),
            ("get_time", {"city": "Tokyo"}),
        ]
        assert not choice.message.content
        assert choice.finish_reason == "tool_calls"


def test_four_concurrent_requests_forced_and_free_each_get_their_own_answer(
    client: OpenAI,
) -> None:
    question = [{"role": "user", "content": "What time is it in Tokyo?"}]
    named = {"type": "function", "function": {"name": "get_time"}}

    def forced(_: int) -> ChatCompletion:
        return ask(client, question, tool_choice=named, max_tokens=40)

    def free(_: int) -> ChatCompletion:
        return ask(client, question, tools=None, max_tokens=40)

    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(job, i) for i, job in enumerate([forced, free, forced, free])]
        replies = [job.result().choices[0] for job in jobs]
    for reply in replies[0::2]:
        assert [name for name, _ in calls(reply.message)] == ["get_time"]
        assert reply.finish_reason == "tool_calls"
    for reply in replies[1::2]:
        assert reply.message.tool_calls is None and reply.message.content


def test_a_named_function_is_called_on_the_smollm3_standin(smollm3: OpenAI) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    for reply in (
        ask(smollm3, QUESTION, **ON_STANDIN, tool_choice=named),
        streamed(smollm3, QUESTION, **ON_STANDIN, tool_choice=named),
    ):
        choice = reply.choices[0]
        assert [name for name, _ in calls(choice.message)] == ["get_weather"]
        assert "city" in calls(choice.message)[0][1]
        assert choice.finish_reason == "tool_calls"


def test_a_forced_call_then_its_result_gets_an_answer_on_the_smollm3_standin(
    smollm3: OpenAI,
) -> None:
    options = {"tool_choice": "required", "parallel_tool_calls": False}
    first = ask(smollm3, QUESTION, **ON_STANDIN, **options).choices[0].message
    assert len(calls(first)) == 1
    results = [
        {"role": "tool", "tool_call_id": call.id, "content": "22 C, sunny"}
        for call in first.tool_calls or []
    ]
    answer = ask(smollm3, [*QUESTION, first, *results], **ON_STANDIN, max_tokens=8).choices[0]
    assert answer.finish_reason in ("stop", "length", "tool_calls")
    assert answer.message.content or answer.message.tool_calls


def test_a_forced_call_cut_short_by_max_tokens_stays_text(smollm3: OpenAI) -> None:
    reply = ask(smollm3, QUESTION, **ON_STANDIN, tool_choice="required", max_tokens=8)
    choice = reply.choices[0]
    assert (choice.message.content or "").startswith("<tool_call>")
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "length"


def test_reasoning_comes_first_then_the_call(smollm3: OpenAI) -> None:
    # The prefill opens a reasoning block and the budget closes it after 4
    # tokens: the grammar constrains only the answer, which is the call.
    prefilled = [*QUESTION, {"role": "assistant", "content": "<think>\n"}]
    named = {"type": "function", "function": {"name": "get_weather"}}
    options = {"model": "smollm3", "temperature": 0, "tool_choice": named, "max_tokens": 120}
    budget = {"extra_body": {"reasoning_budget": 4}}
    for reply in (
        ask(smollm3, prefilled, **options, **budget),
        streamed(smollm3, prefilled, **options, **budget),
    ):
        message = reply.choices[0].message
        assert message.reasoning_content  # type: ignore[attr-defined]
        assert "<tool_call>" not in message.reasoning_content  # type: ignore[attr-defined]
        assert [name for name, _ in calls(message)] == ["get_weather"]
        assert reply.choices[0].finish_reason == "tool_calls"
