"""What /v1 takes from the component when a request leaves it out: the
answer length (`max_output_length` of the component's action), through the
real `openai` client against a real server on the embedded model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from openai import OpenAI

from tests.server.conftest import LiveServer

COMPONENTS = """
controller:
  base_path: /api
workflows:
  - id: ask
    job:
      component: capped
components:
  - id: capped
    type: model
    task: chat-completion
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    messages:
      - role: user
        content: ${input.question}
    max_output_length: 5
  - id: bound
    type: model
    task: chat-completion
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    messages:
      - role: user
        content: ${input.question}
    max_output_length: ${input.length as integer | 5}
  - id: writer
    type: model
    task: text-generation
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    text: ${input.prompt}
    max_output_length: 3
  - id: free
    type: model
    task: text-generation
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    text: ${input.prompt}
"""
STORY = "Write a long story about a dragon."


@pytest.fixture
def client(live_server: Callable[..., LiveServer]) -> OpenAI:
    server = live_server(COMPONENTS)
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_a_chat_request_without_max_tokens_stops_at_the_components_max_output_length(
    client: OpenAI,
) -> None:
    messages = [{"role": "user", "content": STORY}]
    reply = client.chat.completions.create(model="capped", messages=messages, temperature=0)
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert reply.choices[0].finish_reason == "length"
    longer = client.chat.completions.create(
        model="capped", messages=messages, temperature=0, max_tokens=9
    )
    assert longer.usage is not None and longer.usage.completion_tokens == 9


def test_a_max_output_length_that_is_a_binding_is_no_default_for_v1(client: OpenAI) -> None:
    # A short answer, but longer than the binding's default of 5 tokens.
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    reply = client.chat.completions.create(model="bound", messages=messages, temperature=0)
    assert reply.usage is not None and reply.usage.completion_tokens > 5
    assert reply.choices[0].finish_reason == "stop"


def test_a_text_completion_takes_the_components_length_else_openais_16(client: OpenAI) -> None:
    capped = client.completions.create(model="writer", prompt="Once upon a time", temperature=0)
    assert capped.usage is not None and capped.usage.completion_tokens == 3
    free = client.completions.create(model="free", prompt="Once upon a time", temperature=0)
    assert free.usage is not None and free.usage.completion_tokens == 16
