"""The chat view of a chat-completion workflow: turns kept on the page and
sent with their history, New chat, the system prompt, folded reasoning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing.user_interaction import UserInteraction

from runtime.engine.types import (
    ChatMessage,
    Delta,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    Timings,
    Usage,
)
from tests.webui.composes import CHAT
from tests.webui.conftest import OpenPage, Page, text_of
from tests.webui.scripted import answer_with


def spy_on_requests(page: Page, monkeypatch: pytest.MonkeyPatch) -> list[GenerationRequest]:
    """The requests the chat's turns send to the model (which still answers them)."""
    requests: list[GenerationRequest] = []
    engine_of = page.service.components.engine

    class Spy:
        def __init__(self, engine: Any) -> None:
            self.engine = engine

        def submit(self, request: GenerationRequest) -> Any:
            requests.append(request)
            return self.engine.submit(request)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.engine, name)  # info, max_queue...

    async def spied(component_id: str) -> Any:
        return Spy(await engine_of(component_id))

    monkeypatch.setattr(page.service.components, "engine", spied)
    return requests


async def say(page: Page, text: str) -> str:
    """Send `text` in the chat; the stats line once it is answered."""
    before = page.text("chat-stats")
    page.user.find(marker="chat-input").type(text)
    page.user.find(marker="chat-send").click()
    return await page.until(lambda: page.text("chat-stats") != before and page.text("chat-stats"))


async def test_each_turn_is_sent_with_the_conversation_so_far(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(CHAT) as page:
        requests = spy_on_requests(page, monkeypatch)
        assert page.value("system-prompt") == "You are a helpful assistant."

        stats = await say(page, "What is the capital of France?")
        assert stats.startswith("finish: ")
        first = text_of(page.elements("chat-answer")[0])
        assert first
        await say(page, "And of Italy?")

        system = ChatMessage("system", "You are a helpful assistant.")
        question = ChatMessage("user", "What is the capital of France?")
        assert requests[0].messages == [system, question]
        assert requests[1].messages == [
            system,
            question,
            ChatMessage("assistant", first),
            ChatMessage("user", "And of Italy?"),
        ]
        # The workflow's own settings: greedy, and max_output_length's default.
        assert requests[1].sampling.greedy and requests[1].max_tokens == 12
        users = [text_of(e) for e in page.elements("chat-user")]
        assert users == ["What is the capital of France?", "And of Italy?"]
        assert len(page.elements("chat-answer")) == 2
        assert page.value("chat-input") == ""


async def test_new_chat_forgets_the_conversation_and_the_edited_system_prompt_is_sent(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(CHAT) as page:
        requests = spy_on_requests(page, monkeypatch)
        # The Form tab's values reach the chat's settings too.
        page.user.find(marker="input-max_tokens").clear().type("4")
        await say(page, "Hello!")
        page.user.find(marker="new-chat").click()
        await page.until(lambda: not page.elements("chat-user"))
        assert page.elements("chat-answer") == []

        page.user.find(marker="system-prompt").clear().type("Answer in French.")
        await say(page, "Good morning!")
        assert requests[1].messages == [
            ChatMessage("system", "Answer in French."),
            ChatMessage("user", "Good morning!"),
        ]
        assert requests[1].max_tokens == 4


async def test_an_empty_system_prompt_is_optional_and_sends_no_system_message(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(CHAT) as page:
        requests = spy_on_requests(page, monkeypatch)
        assert page.element("system-prompt").props["hint"].startswith("optional")
        page.user.find(marker="system-prompt").clear()
        await say(page, "Hello!")
        assert requests[0].messages == [ChatMessage("user", "Hello!")]


async def test_reasoning_is_folded_apart_from_the_answer_while_it_streams(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(CHAT, load=False) as page:
        more = asyncio.Event()

        async def think(request: GenerationRequest) -> AsyncIterator[str | Delta]:
            yield Delta("Paris is the ", 3, reasoning=True)
            yield Delta("capital.", 4, reasoning=True)
            await more.wait()
            yield "It is "
            yield "**Paris**."

        def thought(answer: str) -> GenerationResult:
            return GenerationResult(
                answer,
                FinishReason.STOP,
                Usage(20, 0, 9, reasoning_tokens=6),
                Timings(0.05, 0.2, 45),
                reasoning="Paris is the capital.",
            )

        answer_with(page, monkeypatch, think, thought)
        page.user.find(marker="chat-input").type("Capital of France?")
        page.user.find(marker="chat-send").click()

        await page.until(
            lambda: page.text("reasoning-text", within="chat-assistant") == "Paris is the capital."
        )
        expansion = page.element("reasoning", within="chat-assistant")
        assert expansion.visible and expansion.text == "Reasoning…"
        assert page.text("chat-answer") == ""

        more.set()
        stats = await page.until(lambda: page.text("chat-stats"))
        assert expansion.text == "Reasoning" and expansion.value is False  # folded
        assert page.text("chat-answer") == "It is **Paris**."
        copied: list[str] = []
        monkeypatch.setattr(ui.clipboard, "write", copied.append)
        copy = page.element("copy", within="chat-assistant")
        UserInteraction(page.user, {copy}, None).click()
        assert copied == ["It is **Paris**."]  # the answer only
        assert stats == (
            "finish: stop · 20 prompt + 9 completion tokens (6 reasoning)"
            " · first token after 50 ms · 45.0 tokens/s"
        )


async def test_cancel_stops_the_answer_and_keeps_what_was_said(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(CHAT, load=False) as page:

        async def ramble(request: GenerationRequest) -> AsyncIterator[str]:
            while not request.cancel.is_cancelled:
                yield "la "
                await asyncio.sleep(0.01)

        def sung(text: str) -> GenerationResult:
            return GenerationResult(text, FinishReason.CANCELLED, Usage(5, 0, text.count("la")))

        answer_with(page, monkeypatch, ramble, sung)
        page.user.find(marker="chat-input").type("Sing!")
        page.user.find(marker="chat-send").click()
        await page.until(lambda: page.text("chat-answer").startswith("la la la"))
        page.user.find(marker="chat-cancel").click()
        stats = await page.until(lambda: page.text("chat-stats"))
        assert stats.startswith("finish: cancelled")
        assert page.text("chat-answer").startswith("la la la")
        assert page.element("chat-send").enabled
