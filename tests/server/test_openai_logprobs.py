"""Logprobs on /v1, through the real `openai` client against a real server on
the embedded model: OpenAI's shapes on chat and legacy completions, the same
entries streamed as not, only for the answer of a reasoning model, and no
U+FFFD when a reply is cut inside a character."""

from __future__ import annotations

import math
from collections.abc import Callable

import openai
import pytest
from openai import OpenAI

from tests.server.conftest import LiveServer

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
QUESTION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
EMOJI = [{"role": "user", "content": "Reply with three emoji 🎉"}]


@pytest.fixture
def client(live_server: Callable[..., LiveServer]) -> OpenAI:
    server = live_server("quickstart")
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_a_chat_completion_gives_each_answer_token_with_its_alternatives(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=0, max_tokens=20, logprobs=True, top_logprobs=3
    )
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    assert len(tokens) == reply.usage.completion_tokens  # type: ignore[union-attr]
    for token in tokens:
        assert bytes(token.bytes or []).decode() == token.token
        assert len(token.top_logprobs) == 3
        # Greedy: the answer's token is the most likely one.
        assert token.top_logprobs[0].token == token.token
        assert token.top_logprobs[0].logprob == token.logprob <= 0
    assert math.exp(tokens[-1].logprob) > 0.5  # "." after "Paris" is near certain


def test_without_logprobs_a_choice_has_none(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=0, max_tokens=4
    )
    assert reply.choices[0].logprobs is None


def test_streamed_chunks_carry_the_logprobs_of_their_own_tokens(client: OpenAI) -> None:
    params = {"model": MODEL, "messages": QUESTION, "temperature": 0, "max_tokens": 20}
    whole = client.chat.completions.create(**params, logprobs=True, top_logprobs=2)  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(**params, logprobs=True, top_logprobs=2, stream=True)  # type: ignore[call-overload]
    )
    streamed = [
        token
        for chunk in chunks
        if chunk.choices and chunk.choices[0].logprobs
        for token in chunk.choices[0].logprobs.content or []
    ]
    expected = whole.choices[0].logprobs.content  # type: ignore[union-attr]
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in expected]
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            content = chunk.choices[0].logprobs.content  # type: ignore[union-attr]
            assert "".join(t.token for t in content) == chunk.choices[0].delta.content


def test_a_text_completion_gives_openais_parallel_lists(client: OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL, prompt="The capital of France is", temperature=0, max_tokens=6, logprobs=2
    )
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs
    assert "".join(logprobs.tokens) == choice.text
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == 6
    assert logprobs.text_offset == [
        len("".join(logprobs.tokens[:i])) for i in range(len(logprobs.tokens))
    ]
    for token, logprob, top in zip(
        logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs or [], strict=True
    ):
        assert len(top) == 2 and top[token] == logprob == max(top.values())


def test_a_streamed_text_completion_continues_its_offsets_across_chunks(client: OpenAI) -> None:
    params = {"model": MODEL, "prompt": "Once upon a time", "temperature": 0, "max_tokens": 8}
    whole = client.completions.create(**params, logprobs=0)  # type: ignore[call-overload]
    chunks = list(client.completions.create(**params, logprobs=0, stream=True))  # type: ignore[call-overload]
    offsets = [
        o for c in chunks if c.choices[0].logprobs for o in c.choices[0].logprobs.text_offset
    ]
    assert offsets == whole.choices[0].logprobs.text_offset  # type: ignore[union-attr]
    # logprobs=0: the sampled token alone.
    assert all(len(top) == 1 for top in whole.choices[0].logprobs.top_logprobs)  # type: ignore[union-attr]


def test_a_reply_cut_inside_a_character_ends_without_a_replacement_character(
    client: OpenAI,
) -> None:
    params = {"model": MODEL, "messages": EMOJI, "temperature": 0, "max_tokens": 20}
    reply = client.chat.completions.create(**params)  # type: ignore[call-overload]
    text = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "length"
    assert text.startswith("🎉") and "\ufffd" not in text
    chunks = list(client.chat.completions.create(**params, stream=True))  # type: ignore[call-overload]
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == text and "\ufffd" not in deltas[-1] + deltas[-2]
    legacy = client.completions.create(model=MODEL, prompt="🎉🎉🎉", temperature=0, max_tokens=7)
    assert "\ufffd" not in legacy.choices[0].text


def test_a_token_that_is_part_of_a_character_shows_its_bytes_escaped(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=EMOJI, temperature=0, max_tokens=6, logprobs=True
    )
    tokens = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert bytes(b for t in tokens for b in t.bytes or []).decode() == "🎉🎉"
    assert tokens[0].token.startswith("\\x")


def test_top_logprobs_without_logprobs_is_refused(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=QUESTION, top_logprobs=2)
    assert caught.value.param == "top_logprobs"
