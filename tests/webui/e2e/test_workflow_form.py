"""The workflow form in a real browser, against a real `model-compose up` of
examples/quickstart: what a person sees, types and clicks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tests.webui.e2e.conftest import (
    ICONS,
    Server,
    button,
    field,
    inserted,
    page_text,
    shows,
    update_readme_screenshot,
    wait_until,
)

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

TITLE = "Generate Chat Messages"
DESCRIPTION = (
    "Generate chat messages based on a given role message using a pretrained language model."
)
# The line under a finished run's answer, e.g. "finish: stop · 28 prompt +
# 239 completion tokens · first token after 258 ms · 76.2 tokens/s".
STATS = re.compile(r"^finish: (\w+)(?: · .*?(\d+) completion tokens)?.*$", re.MULTILINE)


def open_form(driver: WebDriver, server: Server) -> None:
    driver.get(f"{server.ui_url}/")
    wait_until(lambda: shows(driver, TITLE), what=f"the title {TITLE!r}")


def fill_in(driver: WebDriver, system_prompt: str, user_prompt: str) -> None:
    field(driver, "system_prompt").send_keys(system_prompt)
    field(driver, "user_prompt").send_keys(user_prompt)


def answer_of(new_text: str) -> str:
    """The answer in the text a run added to the page (without its stats
    line, the output's name above it, or icons)."""
    lines = new_text.splitlines()
    kept = [
        line
        for line in lines
        if line not in ICONS and line != "generated" and not STATS.match(line)
    ]
    return "\n".join(kept).strip()


def test_a_person_runs_the_workflow_and_sees_the_answer_stream_in(
    server: Server, browser: WebDriver, screenshot: Callable[[str], Path]
) -> None:
    open_form(browser, server)
    assert shows(browser, DESCRIPTION)
    fill_in(
        browser, "You are a helpful AI assistant.", "Explain quantum computing in simple terms."
    )
    before = page_text(browser)

    button(browser, "Run Workflow").click()
    streamed: list[str] = []  # the answer as the page showed it, while running
    deadline = time.monotonic() + 60
    while not STATS.search(new := inserted(before, page_text(browser))):
        assert time.monotonic() < deadline, f"the run did not finish; the page shows: {new!r}"
        answer = answer_of(new)
        if answer and (not streamed or answer != streamed[-1]):
            streamed.append(answer)
        time.sleep(0.1)

    assert len(streamed) >= 3, f"the answer did not stream in: {streamed}"
    assert len(streamed[0]) < len(streamed[len(streamed) // 2]) < len(answer_of(new))
    stats = STATS.search(new)
    assert stats is not None and stats[1] in ("stop", "length"), new
    assert re.search(r"\d+ completion tokens · first token after .+ · [\d.]+ tokens/s", stats[0])
    assert re.search(r"[A-Za-z]{4,}", answer_of(new)), new
    update_readme_screenshot(screenshot("run-workflow"))


def test_cancel_stops_a_long_run(
    server: Server, browser: WebDriver, screenshot: Callable[[str], Path]
) -> None:
    open_form(browser, server)
    fill_in(
        browser,
        "You are a novelist who writes very long stories.",
        "Write a long story, at least two thousand words, about a dragon who learns to bake.",
    )
    before = page_text(browser)
    button(browser, "Run Workflow").click()
    wait_until(
        lambda: len(answer_of(inserted(before, page_text(browser)))) > 40,
        what="the story to start streaming",
    )

    button(browser, "Cancel").click()
    stats = wait_until(
        lambda: STATS.search(page_text(browser)), what="the run's stats after Cancel"
    )
    assert stats[1] == "cancelled", stats[0]
    # Stopped early: the quickstart allows 512 tokens (~5 s at this speed).
    assert stats[2] is None or int(stats[2]) < 512, stats[0]
    stopped = answer_of(inserted(before, page_text(browser)))
    time.sleep(1.0)  # a run still going would add ~100 tokens in a second
    assert answer_of(inserted(before, page_text(browser))) == stopped
    assert button(browser, "Run Workflow").is_enabled()
    assert not button(browser, "Cancel").is_enabled()
    screenshot("cancelled")
