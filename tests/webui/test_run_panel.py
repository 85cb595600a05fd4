"""Running a workflow from the form: the answer streams in (a reasoning
model's reasoning folded above it), the stats come under it, Cancel stops it,
errors read as messages; the API panel's curl command follows the form."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shlex
from collections.abc import AsyncIterator

import pytest

from runtime.engine.logprobs import TokenLogprob
from runtime.engine.types import Delta, FinishReason, GenerationRequest, GenerationResult
from runtime.webui import run_panel
from tests.webui.composes import BATCH, CHAT, THINKING
from tests.webui.conftest import API_URL, OpenPage
from tests.webui.scripted import answer_with


async def test_a_run_streams_the_answer_then_shows_its_stats(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(CHAT) as page:
        shown: list[str] = []
        on_delta = run_panel._StreamListener.on_delta

        def spy(
            self: run_panel._StreamListener,
            job_id: str,
            text: str,
            streaming: bool,
            reasoning: bool = False,
            logprobs: tuple[TokenLogprob, ...] = (),
        ) -> None:
            on_delta(self, job_id, text, streaming, reasoning, logprobs)
            shown.append(page.text("output"))  # what the page shows after each piece

        monkeypatch.setattr(run_panel._StreamListener, "on_delta", spy)
        page.user.find(marker="input-user_prompt").type("What is the capital of France?")
        page.user.find(marker="run").click()
        stats = await page.until(lambda: page.text("stats"))

        assert len(shown) >= 3, shown
        assert all(len(a) <= len(b) for a, b in itertools.pairwise(shown)), shown
        answer = page.text("output")
        assert answer and answer == shown[-1]
        assert page.text("output-caption") == "generated"
        assert re.match(r"finish: (stop|length) · \d+ prompt \+ \d+ completion tokens", stats)
        assert "first token after" in stats and "tokens/s" in stats
        assert page.element("run").enabled and not page.element("cancel").enabled


async def test_reasoning_streams_into_the_fold_and_the_answer_stays_apart(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(THINKING) as page:
        titles: list[str] = []  # the fold's title after each piece
        results: list[GenerationResult] = []
        on_delta = run_panel._StreamListener.on_delta

        def spy(
            self: run_panel._StreamListener,
            job_id: str,
            text: str,
            streaming: bool,
            reasoning: bool = False,
            logprobs: tuple[TokenLogprob, ...] = (),
        ) -> None:
            on_delta(self, job_id, text, streaming, reasoning, logprobs)
            titles.append(page.element("reasoning").text)

        monkeypatch.setattr(run_panel._StreamListener, "on_delta", spy)
        monkeypatch.setattr(
            run_panel._StreamListener, "on_result", lambda _, j, r: results.append(r)
        )
        page.user.find(marker="input-question").type("What is the capital of France?")
        page.user.find(marker="run").click()
        await page.until(lambda: page.text("stats"))

        [result] = results
        assert result.reasoning and result.text
        assert page.text("reasoning-text") == result.reasoning
        assert page.text("output") == result.text
        assert result.reasoning not in page.text("output")
        # "Reasoning…" while only reasoning had come, "Reasoning" from the answer on.
        assert [title for title, _ in itertools.groupby(titles)] == ["Reasoning…", "Reasoning"]
        fold = page.element("reasoning")
        assert fold.visible and fold.text == "Reasoning" and fold.value is False


async def test_cancel_stops_a_long_run(open_page: OpenPage) -> None:
    async with open_page(CHAT) as page:
        page.user.find(marker="input-max_tokens").clear().type("3000")
        page.user.find(marker="input-user_prompt").type("Write a very long story about a dragon.")
        page.user.find(marker="run").click()
        await page.until(lambda: len(page.text("output")) > 20)
        assert page.element("cancel").enabled

        page.user.find(marker="cancel").click()
        stats = await page.until(lambda: page.text("stats"), timeout=5)

        assert stats.startswith("finish: cancelled")
        completion = int(stats.split(" completion tokens")[0].rsplit(" ", 1)[1])
        assert completion < 3000
        assert page.element("run").enabled and not page.element("cancel").enabled
        assert page.text("error") == ""


async def test_a_run_cancelled_while_thinking_keeps_its_reasoning_folded(
    open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_page(THINKING, load=False) as page:

        async def ponder(request: GenerationRequest) -> AsyncIterator[str | Delta]:
            yield Delta("Hmm,", 2, reasoning=True)
            while not request.cancel.is_cancelled:
                await asyncio.sleep(0.01)

        def stopped(answer: str) -> GenerationResult:
            return GenerationResult(answer, FinishReason.CANCELLED, reasoning="Hmm,")

        answer_with(page, monkeypatch, ponder, stopped)
        page.user.find(marker="input-question").type("Why?")
        page.user.find(marker="run").click()
        await page.until(lambda: page.element("reasoning").text == "Reasoning…")
        page.user.find(marker="cancel").click()
        stats = await page.until(lambda: page.text("stats"))

        assert stats.startswith("finish: cancelled")
        assert page.element("reasoning").text == "Reasoning"
        assert page.text("reasoning-text") == "Hmm,"
        assert page.text("output") == ""


async def test_a_failed_run_shows_a_readable_message_next_to_the_input(
    open_page: OpenPage,
) -> None:
    async with open_page(CHAT) as page:
        page.user.find(marker="input-max_tokens").clear().type("0")
        page.user.find(marker="input-user_prompt").type("Hi")
        page.user.find(marker="run").click()
        message = await page.until(lambda: page.text("error"))
        assert message == "max_output_length must be at least 1, got 0"
        assert "Traceback" not in message
        assert page.element("stats").visible is False


async def test_an_output_that_is_a_list_shows_as_json(open_page: OpenPage) -> None:
    async with open_page(BATCH) as page:
        page.user.find(marker="input-prompts").type('["Roses are", "The sea is"]')
        page.user.find(marker="run").click()
        stats = await page.until(lambda: page.text("stats"))
        output = json.loads(page.text("output-json"))
        assert len(output) == 2 and output[0].startswith("Roses are")
        assert "+ 8 completion tokens" in stats  # both generations together
        assert page.element("output").visible is False or page.text("output") == ""


async def test_the_curl_command_follows_the_form_and_never_shows_the_key(
    open_page: OpenPage,
) -> None:
    async with open_page(CHAT, load=False) as page:
        page.user.find(marker="input-user_prompt").type("It's me")
        page.user.find(marker="input-max_tokens").clear().type("7")
        command = page.text("curl")
        words = shlex.split(command.replace("\\\n", " "))
        assert words[:4] == ["curl", "-X", "POST", f"{API_URL}/workflows/__workflow__/runs"]
        assert "Authorization: Bearer $MODEL_COMPOSE_API_KEY" in words
        assert "secret-key-123" not in command
        body = json.loads(words[words.index("-d") + 1])
        assert body == {
            "input": {
                "system_prompt": "You are a helpful assistant.",
                "user_prompt": "It's me",
                "max_tokens": 7,
            }
        }
