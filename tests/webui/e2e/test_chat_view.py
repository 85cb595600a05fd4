"""The chat view of a chat-completion workflow in a real browser: the
conversation keeps its turns."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tests.webui.e2e.conftest import (
    ICONS,
    Server,
    button,
    buttons,
    field,
    page_text,
    shows,
    visible,
    wait_until,
)

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

STATS = re.compile(r"^finish: .*$", re.MULTILINE)


def turns(driver: WebDriver) -> list[tuple[str, str]]:
    """The conversation as the page shows it: (what You said, what the
    Assistant answered), between the New chat button and the stats line."""
    lines = page_text(driver).splitlines()
    start = next(i for i, line in enumerate(lines) if line.lower() == "new chat") + 1
    end = next((i for i in range(start, len(lines)) if STATS.match(lines[i])), len(lines))
    found: list[tuple[str, str]] = []
    said: list[str] = []
    answered: list[str] = []
    speaker = None
    for line in lines[start:end]:
        if line in ("You", "Assistant"):
            if line == "You" and speaker is not None:
                found.append(("\n".join(said).strip(), "\n".join(answered).strip()))
                said, answered = [], []
            speaker = line
        elif line not in ICONS:
            (said if speaker == "You" else answered).append(line)
    if speaker is not None:
        found.append(("\n".join(said).strip(), "\n".join(answered).strip()))
    return found


def stats_line(driver: WebDriver) -> str:
    found = STATS.search(page_text(driver))
    return found[0] if found else ""


def wait_for_reply(driver: WebDriver, message: str, stats_before: str) -> None:
    """The turn is over: the message is on the page, a new stats line is
    under the reply, and Send is usable again."""
    wait_until(lambda: shows(driver, message), what=f"{message!r} in the conversation")
    wait_until(
        lambda: (
            stats_line(driver) not in ("", stats_before) and button(driver, "Send").is_enabled()
        ),
        timeout=60,
        what=f"the reply to {message!r}",
    )


def test_a_person_chats_and_sees_both_turns(
    server: Server, browser: WebDriver, screenshot: Callable[[str], Path]
) -> None:
    browser.get(f"{server.ui_url}/")
    button(browser, "Chat").click()
    button(browser, "New chat")
    wait_until(lambda: not visible(buttons(browser, "Run Workflow")), what="the form to be hidden")
    field(browser, "System prompt").send_keys("You are a helpful assistant. Answer in a sentence.")

    first = "What is the capital of France?"
    field(browser, "Message").send_keys(first)
    button(browser, "Send").click()
    wait_for_reply(browser, first, "")
    [(said, answered)] = turns(browser)
    assert said == first
    assert answered

    second = "And the capital of Italy?"
    stats = stats_line(browser)
    field(browser, "Message").send_keys(second + "\n")  # Enter sends, too
    wait_for_reply(browser, second, stats)
    conversation = turns(browser)
    assert [said for said, _ in conversation] == [first, second]
    assert conversation[0][1] == answered
    assert conversation[1][1]
    assert field(browser, "Message").get_attribute("value") == ""
    screenshot("chat")
