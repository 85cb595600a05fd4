"""A reasoning model's run in a real browser: what the model thinks streams
into the folded "Reasoning" section, never into the answer."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.webui.e2e.conftest import (
    ICONS,
    Server,
    button,
    compose_up,
    field,
    inserted,
    page_text,
    shows,
    wait_until,
)
from tests.webui.e2e.test_workflow_form import STATS

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

# Two workflows on one component that reasons (see tests/webui/composes.py's
# THINKING): the page's, whose output is the answer, and one whose output
# holds the answer and the reasoning apart, to know what the page should show.
COMPOSE = """
controller:
  adapter:
    type: http-server
    port: 8080
    base_path: /api
  webui:
    driver: gradio
    port: 8081
workflows:
  - id: think
    title: Think first
    default: true
    job:
      output:
        generated: ${output}
  - id: apart
    title: Answer and reasoning
    job:
      output:
        answer: ${output}
        reasoning: ${reasoning}
component:
  type: model
  task: chat-completion
  model: HuggingFaceTB/SmolLM2-135M-Instruct
  reasoning_budget: 4
  action:
    messages:
      - role: user
        content: ${input.question}
      - role: assistant
        content: "<think>\\n"
    max_output_length: 24
    params:
      do_sample: false
"""
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def thinking_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with compose_up(tmp_path_factory.mktemp("thinking"), textwrap.dedent(COMPOSE)) as running:
        yield running


def shown_lines(text: str) -> list[str]:
    """The lines a person reads: no blank lines, icons or stats line."""
    return [
        line for line in text.splitlines() if line and line not in ICONS and not STATS.match(line)
    ]


def test_reasoning_lands_in_the_fold_and_not_in_the_answer(
    thinking_server: Server, browser: WebDriver
) -> None:
    from selenium.webdriver.common.by import By

    expected = httpx.post(
        f"{thinking_server.api_url}/api/workflows/apart/runs",
        json={"input": {"question": QUESTION}, "output_only": True},
        timeout=60,
    ).json()
    assert expected["reasoning"] and expected["answer"]  # the model did think, then answer
    assert expected["reasoning"] not in expected["answer"]  # so the page can tell them apart

    browser.get(f"{thinking_server.ui_url}/")
    wait_until(lambda: shows(browser, "Think first"), what="the workflow's tab")
    field(browser, "question").send_keys(QUESTION)
    before = page_text(browser)
    button(browser, "Run Workflow").click()
    seen: list[str] = []  # what the run added to the page, as it streamed

    def finished() -> str | None:
        seen.append(inserted(before, page_text(browser)))
        return seen[-1] if STATS.search(seen[-1]) else None

    ran = wait_until(finished, interval=0.02, what="the run's stats")
    # Folded: its title only, then the answer (greedy: the same as the API's).
    assert shown_lines(ran) == ["generated", "Reasoning", expected["answer"]]
    assert not any(expected["reasoning"] in text for text in seen)

    folded = page_text(browser)
    fold = browser.find_element(By.XPATH, "//*[@aria-expanded][contains(., 'Reasoning')]")
    fold.click()
    opened = wait_until(
        lambda: inserted(folded, page_text(browser)), what="the reasoning to unfold"
    )
    assert shown_lines(opened) == [expected["reasoning"]]
