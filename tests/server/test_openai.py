"""The OpenAI-compatible API, driven by the official `openai` client against a
real server on the embedded model (greedy or seeded, few tokens)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest
from openai import OpenAI

from tests.server.conftest import LiveServer

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
QUESTION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture
def client(live_server: Callable[..., LiveServer]) -> OpenAI:
    server = live_server("quickstart")
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_the_models_list_names_the_component_by_its_id_and_by_its_model(client: OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == ["__component__", MODEL]
    assert all(m.object == "model" and m.owned_by == "model-compose" for m in models)
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4o")
    assert caught.value.code == "model_not_found"


def test_a_greedy_chat_completion_answers_the_question(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=0, max_tokens=30
    )
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == MODEL
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens is not None


def test_a_streamed_chat_completion_adds_up_to_the_same_answer_then_its_usage(
    client: OpenAI,
) -> None:
    params = {"model": "__component__", "messages": QUESTION, "temperature": 0, "max_tokens": 30}
    whole = client.chat.completions.create(**params)  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == "__component__" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_a_text_completion_continues_the_prompt_and_echo_prepends_it(client: OpenAI) -> None:
    prompt = "The capital of France is"
    plain = client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=8)
    echoed = client.completions.create(
        model=MODEL, prompt=[prompt], temperature=0, max_tokens=8, echo=True
    )
    assert plain.object == "text_completion"
    assert "Paris" in plain.choices[0].text
    assert echoed.choices[0].text == prompt + plain.choices[0].text
    assert plain.choices[0].finish_reason in ("stop", "length")


def test_a_streamed_text_completion_adds_up_to_the_same_text(client: OpenAI) -> None:
    params = {"model": MODEL, "prompt": "Once upon a time", "temperature": 0, "max_tokens": 12}
    whole = client.completions.create(**params)  # type: ignore[call-overload]
    chunks = list(
        client.completions.create(**params, stream=True, stream_options={"include_usage": True})
    )
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_max_tokens_cuts_the_answer_with_finish_reason_length(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Tell me a long story."}],
        temperature=0,
        max_completion_tokens=3,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_a_stop_sequence_ends_the_text_before_it(client: OpenAI) -> None:
    params = {"model": MODEL, "prompt": "Once upon a time", "temperature": 0, "max_tokens": 12}
    whole = client.completions.create(**params).choices[0].text  # type: ignore[call-overload]
    stop = whole.split()[2]
    cut = client.completions.create(**params, stop=[stop, "never"]).choices[0]  # type: ignore[call-overload]
    assert cut.finish_reason == "stop"
    assert cut.text == whole[: whole.index(stop)]


def test_the_same_seed_gives_the_same_sampled_answer(client: OpenAI) -> None:
    def sample(seed: int) -> str:
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Write a poem about the sea."}],
            temperature=1.0,
            top_p=1.0,
            max_tokens=16,
            seed=seed,
        )
        return reply.choices[0].message.content or ""

    first = sample(42)
    assert sample(42) == first
    assert any(sample(seed) != first for seed in (1, 2))


def test_an_unknown_model_is_not_found_and_lists_the_available_ones(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert f"available: __component__, {MODEL}" in caught.value.message


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_longer_than_the_context_is_a_bad_request_even_when_streaming(
    client: OpenAI,
    stream: bool,
) -> None:
    long_prompt = "word " * 5000
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(  # type: ignore[call-overload]
            model=MODEL, messages=[{"role": "user", "content": long_prompt}], stream=stream
        )
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length is 4096 tokens" in caught.value.message
    assert "the request has 50" in caught.value.message


def test_more_than_one_choice_is_refused(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=QUESTION, n=2)
    assert caught.value.param == "n"
    assert "n=2" in caught.value.message and "not supported" in caught.value.message


def test_no_choice_at_all_is_a_bad_value_not_a_missing_feature(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=QUESTION, n=0)
    assert caught.value.param == "n" and caught.value.code is None
    assert caught.value.message.endswith(
        "Invalid value for 'n': input should be greater than or equal to 1."
    )


def test_a_lone_surrogate_in_a_message_is_a_400_not_a_500(
    live_server: Callable[..., LiveServer],
) -> None:
    # JSON can escape half of a UTF-16 pair; Python clients cannot even send
    # it, so the body is written by hand.
    message = '{"role": "user", "content": "Hi \\ud83d"}'
    body = f'{{"model": "{MODEL}", "max_tokens": 4, "messages": [{message}]}}'
    response = httpx.post(
        live_server("quickstart").url + "/v1/chat/completions",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 400
    assert "lone UTF-16 surrogate ('\\ud83d')" in response.json()["error"]["message"]
