"""Reasoning on the HTTP APIs of a real server on the embedded model: `/v1`
returns and streams `reasoning_content` apart from `content` (seen through
the real `openai` client), counts reasoning tokens, and takes
`reasoning_budget`; the workflow stream marks reasoning deltas.

The embedded model does not think by itself: the requests prefill an open
`<think>` block as the assistant's message (the engine continues it), and
the budget closes it after a few tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import openai
import pytest
from openai import OpenAI

from tests.server.conftest import LiveServer

THINKING = """
controller:
  base_path: /api
workflows:
  - id: think
    output:
      answer: ${output}
      thinking: ${reasoning}
    job:
      component: thinker
components:
  - id: thinker
    type: model
    task: chat-completion
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    reasoning_budget: 5
    action:
      messages:
        - role: user
          content: ${input.question}
        - role: assistant
          content: "<think>\\n"
      max_output_length: 30
      streaming: true
      params:
        do_sample: false
"""
PREFILLED = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>\n"},
]


@pytest.fixture
def server(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server(THINKING)


@pytest.fixture
def client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_the_openai_client_sees_reasoning_content_apart_from_the_answer(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="thinker",
        messages=PREFILLED,
        temperature=0,
        max_tokens=30,  # type: ignore[arg-type]
    )
    message = reply.choices[0].message
    reasoning = message.reasoning_content  # type: ignore[attr-defined]
    assert reasoning and message.content
    assert "think>" not in message.content
    details = reply.usage.completion_tokens_details  # type: ignore[union-attr]
    assert details is not None and details.reasoning_tokens > 5


def test_streamed_reasoning_arrives_in_reasoning_content_deltas_before_the_answer(
    client: OpenAI,
) -> None:
    params = {"model": "thinker", "messages": PREFILLED, "temperature": 0, "max_tokens": 30}
    whole = client.chat.completions.create(**params).choices[0].message  # type: ignore[call-overload]
    chunks = list(client.chat.completions.create(**params, stream=True))  # type: ignore[call-overload]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    answer = "".join(d.content or "" for d in deltas)
    assert reasoning == whole.reasoning_content  # type: ignore[attr-defined]
    assert answer == whole.content
    first_answer = next(i for i, d in enumerate(deltas) if d.content)
    assert not any(getattr(d, "reasoning_content", None) for d in deltas[first_answer:])


def test_a_request_budget_overrides_the_components(client: OpenAI) -> None:
    def reasoning_tokens(budget: int) -> int:
        reply = client.chat.completions.create(
            model="thinker",
            messages=PREFILLED,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=40,
            extra_body={"reasoning_budget": budget},
        )
        return reply.usage.completion_tokens_details.reasoning_tokens  # type: ignore[union-attr]

    assert reasoning_tokens(0) == 0
    assert reasoning_tokens(1) + 1 == reasoning_tokens(2)


def test_a_bad_reasoning_effort_is_a_400_naming_the_field(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="thinker",
            messages=PREFILLED,  # type: ignore[arg-type]
            extra_body={"reasoning_effort": "extreme"},
        )
    assert caught.value.param == "reasoning_effort"


def test_legacy_completions_split_reasoning_too(client: OpenAI) -> None:
    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    reply = client.completions.create(model="thinker", prompt=prompt, temperature=0, max_tokens=20)
    choice = reply.choices[0]
    assert choice.reasoning_content  # type: ignore[attr-defined]
    assert "think>" not in choice.text


def test_the_workflow_stream_marks_reasoning_and_the_output_binds_it(server: LiveServer) -> None:
    events = []
    with httpx.stream(
        "POST",
        server.url + "/api/workflows/runs",
        json={"workflow_id": "think", "input": {"question": "What is 2+2?"}},
        headers={"Accept": "text/event-stream"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    done = events[-1]
    assert done["type"] == "done"
    reasoning = "".join(e["text"] for e in events if e["type"] == "reasoning")
    answer = "".join(e["text"] for e in events if e["type"] == "delta")
    assert reasoning == done["output"]["thinking"]
    assert answer == done["output"]["answer"]
    assert done["usage"]["reasoning_tokens"] > 5


def test_logprobs_cover_the_answer_not_the_reasoning(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="thinker",
        messages=PREFILLED,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=30,
        logprobs=True,
    )
    choice = reply.choices[0]
    tokens = choice.logprobs.content  # type: ignore[union-attr]
    assert choice.message.reasoning_content  # type: ignore[attr-defined]
    # The answer's leading space goes with the block's end.
    assert "".join(t.token for t in tokens).lstrip() == choice.message.content
