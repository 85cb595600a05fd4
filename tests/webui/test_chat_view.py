"""The chat view of a chat-completion workflow: turns kept on the page and
sent with their history, New chat, the system prompt, folded reasoning."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runtime.engine.types import (
    ChatMessage,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    Timings,
    Usage,
)
from runtime.workflow.context import RunContext
from tests.webui.composes import CHAT
from tests.webui.conftest import OpenPage, Page, text_of


def spy_on_generate(page: Page, monkeypatch: pytest.MonkeyPatch) -> list[GenerationRequest]:
    """The requests the chat sends to the model (which still answers them)."""
    requests: list[GenerationRequest] = []
    generate = page.service.components.generate

    async def spy(component_id: str, request: GenerationRequest, context: RunContext) -> Any:
        requests.append(request)
        return await generate(component_id, request, context)

    monkeypatch.setattr(page.service.components, "generate", spy)
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
        requests = spy_on_generate(page, monkeypatch)
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
        requests = spy_on_generate(page, monkeypatch)
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


async def test_reasoning_is_folded_apart_from_the_answer_while_it_streams(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(CHAT, load=False) as page:
        more = asyncio.Event()

        async def think(_: str, request: GenerationRequest, context: RunContext) -> Any:
            await context.delta("__chat__", "<think>Paris is the ", True)
            await context.delta("__chat__", "capital.</thi", True)
            await more.wait()
            await context.delta("__chat__", "nk>\n\nIt is **Paris**.", True)
            text = "<think>Paris is the capital.</think>\n\nIt is **Paris**."
            return GenerationResult(
                text, FinishReason.STOP, Usage(20, 0, 9), Timings(0.05, 0.2, 45)
            )

        monkeypatch.setattr(page.service.components, "generate", think)
        page.user.find(marker="chat-input").type("Capital of France?")
        page.user.find(marker="chat-send").click()

        await page.until(lambda: page.text("reasoning-text", within="chat-assistant"))
        expansion = page.element("reasoning", within="chat-assistant")
        assert expansion.visible and expansion.text == "Reasoning…"
        assert page.text("reasoning-text", within="chat-assistant") == "Paris is the capital."
        assert page.text("chat-answer") == ""

        more.set()
        stats = await page.until(lambda: page.text("chat-stats"))
        assert expansion.text == "Reasoning" and expansion.value is False  # folded
        assert page.text("chat-answer") == "It is **Paris**."
        assert stats == (
            "finish: stop · 20 prompt + 9 completion tokens"
            " · first token after 50 ms · 45.0 tokens/s"
        )


async def test_cancel_stops_the_answer_and_keeps_what_was_said(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(CHAT, load=False) as page:

        async def ramble(_: str, request: GenerationRequest, context: RunContext) -> Any:
            count = 0
            while not context.cancel.is_cancelled:
                count += 1
                await context.delta("__chat__", "la ", True)
                await asyncio.sleep(0.01)
            return GenerationResult("la " * count, FinishReason.CANCELLED, Usage(5, 0, count))

        monkeypatch.setattr(page.service.components, "generate", ramble)
        page.user.find(marker="chat-input").type("Sing!")
        page.user.find(marker="chat-send").click()
        await page.until(lambda: page.text("chat-answer").startswith("la la la"))
        page.user.find(marker="chat-cancel").click()
        stats = await page.until(lambda: page.text("chat-stats"))
        assert stats.startswith("finish: cancelled")
        assert page.text("chat-answer").startswith("la la la")
        assert page.element("chat-send").enabled
