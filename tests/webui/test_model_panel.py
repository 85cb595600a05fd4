"""The model panel: what each model component has loaded, and how, and
what it holds in memory."""

from __future__ import annotations

import re

from nicegui import ui

from tests.server.composes import RELAY
from tests.webui.composes import CHAT, TWO_WORKFLOWS
from tests.webui.conftest import OpenPage


async def test_the_model_panel_shows_each_models_file_and_settings(open_page: OpenPage) -> None:
    async with open_page(TWO_WORKFLOWS) as page:
        panel = page.element("model-text")
        await page.until(lambda: page.text("model-state", within="model-text") == "ready")
        rows = [label.text for label in panel.descendants() if isinstance(label, ui.label)]
        shown = dict(zip(rows[::2], rows[1::2], strict=True))
        assert shown["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert shown["file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert shown["quantization"] == "Q4_1"
        assert shown["context length"] == "4096 (trained on 8192)"
        assert shown["threads"] == "1"  # `n_threads: 1` in the file
        assert shown["GPU layers"] == "0"
        assert shown["sampling defaults"] == "temperature 0.8, top-p 0.95, top-k 40, min-p 0.05"
        assert page.text("model-state", within="model-chat") == "ready"


async def test_the_model_panel_says_loading_until_the_models_are_loaded(
    open_page: OpenPage,
) -> None:
    async with open_page(CHAT, load=False) as page:
        assert page.text("model-state") == "loading"
        await page.service.start()
        await page.until(lambda: page.text("model-state") == "ready", timeout=5)


async def test_the_model_panel_says_unloaded_after_the_keep_alive(open_page: OpenPage) -> None:
    compose = CHAT.replace(
        "      model: HuggingFaceTB/SmolLM2-135M-Instruct\n",
        "      model: HuggingFaceTB/SmolLM2-135M-Instruct\n      keep_alive: 0.3s\n",
    )
    async with open_page(compose) as page:
        await page.until(lambda: page.text("model-state") == "unloaded", timeout=5)
        panel = page.element("model-__component__")
        rows = [label.text for label in panel.descendants() if isinstance(label, ui.label)]
        assert "SmolLM2-135M-Instruct.Q4_1.gguf" in rows  # what it ran, from its last load


async def test_the_model_panel_shows_the_models_memory_and_the_processs(
    open_page: OpenPage,
) -> None:
    async with open_page(CHAT) as page:
        await page.until(lambda: page.text("model-state") == "ready")
        idle = await page.until(lambda: page.text("model-memory"))
        # The embedded model's weights, resident once; no KV cache held yet.
        assert re.fullmatch(r"weights 96\.6 MB, KV 0 B of \d+\.\d MB, compute \d+\.\d MB", idle)
        assert re.fullmatch(
            r"process memory: RSS [\d.]+ [MG]B \([\d.]+ [MG]B anonymous, "
            r"[\d.]+ [MG]B file-backed\)",
            page.text("process-memory"),
        )
        page.user.find(marker="input-user_prompt").type("What is the capital of France?")
        page.user.find(marker="run").click()
        await page.until(lambda: page.text("stats"))
        # The panel's next refresh shows the cells the answer left in its slot.
        held = await page.until(
            lambda: page.text("model-memory") != idle and page.text("model-memory")
        )
        assert re.fullmatch(r"weights 96\.6 MB, KV [\d.]+ [KM]B of \d+\.\d MB, compute .*", held)


async def test_a_workflow_component_gets_no_model_card_and_its_workflow_a_form(
    open_page: OpenPage,
) -> None:
    async with open_page(RELAY) as page:
        assert page.elements("model-relay") == []
        await page.until(lambda: page.text("model-state", within="model-writer") == "ready")
        assert len(page.elements("input-text", within="workflow-front")) == 1
