"""The seed's chat workflow (examples/chat-completion) on the SmolLM3
stand-in, through the real pool and engine: it sends SmolLM3's own prompt,
its output is the answer, thinking turns off from the component, and it
runs without its optional system prompt."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runtime.engine import ModelPool
from runtime.tasks.components import ModelComponents
from runtime.workflow import RunContext, WorkflowRunner
from tests.conftest import example_yaml
from tests.engine.llama.test_smollm3_template import (
    GOLDEN_NO_THINK_WITH_SYSTEM,
    SEED_WITH_SYSTEM,
    SEED_WITHOUT_SYSTEM,
)
from tests.tasks.conftest import Recorder

SEED_INPUT = {
    "system_prompt": "You are a helpful AI assistant.",
    "user_prompt": "Explain quantum computing in simple terms.",
}


def today(golden: str) -> str:
    """A golden prompt (dated 08 July 2025) as the engine writes it today."""
    return golden.replace("08 July 2025", datetime.now().strftime("%d %B %Y"))


@pytest.fixture
async def seed(compose, smollm3_model_path: Path):
    """Run the seed's file on the stand-in (greedy, 8 tokens), with changes."""
    pools: list[ModelPool] = []

    async def run(input: dict[str, Any], *changes: tuple[str, str]) -> tuple[Any, Recorder, Any]:
        text = example_yaml(
            "chat-completion",
            ("model: HuggingFaceTB/SmolLM3-3B", f"model: {smollm3_model_path}"),
            (
                "  action:\n",
                "  action:\n    max_output_length: 8\n    streaming: true\n"
                "    params: {do_sample: false}\n",
            ),
            *changes,
        )
        config = compose(text)
        pools.append(ModelPool())
        components = ModelComponents(config, pools[-1])
        recorder = Recorder()
        output = await WorkflowRunner(config, components).run(
            None, input, RunContext(listener=recorder)
        )
        return output, recorder, await components.engine("__component__")

    yield run
    for pool in pools:
        await pool.close()


def prompt_tokens(engine: Any, golden: str) -> int:
    return len(engine.model.encode(today(golden)))


async def test_the_seed_sends_smollm3s_own_prompt_and_outputs_the_answer(seed) -> None:
    output, recorder, engine = await seed(SEED_INPUT)
    [(_, result)] = recorder.results
    assert result.usage.prompt_tokens == prompt_tokens(engine, SEED_WITH_SYSTEM)
    assert output == {"generated": recorder.text}
    assert "<think>" not in output["generated"] and "</think>" not in output["generated"]


async def test_thinking_off_on_the_component_uses_the_templates_no_think_prompt(seed) -> None:
    _, recorder, engine = await seed(
        SEED_INPUT,
        ("  max_concurrent_count: 1\n", "  max_concurrent_count: 1\n  thinking: false\n"),
    )
    [(_, result)] = recorder.results
    assert result.usage.prompt_tokens == prompt_tokens(engine, GOLDEN_NO_THINK_WITH_SYSTEM)
    assert result.reasoning is None  # the template's empty block is in the prompt, not the output


async def test_the_seed_runs_without_its_optional_system_prompt(seed) -> None:
    output, recorder, engine = await seed({"user_prompt": SEED_INPUT["user_prompt"]})
    [(_, result)] = recorder.results
    assert result.usage.prompt_tokens == prompt_tokens(engine, SEED_WITHOUT_SYSTEM)
    assert output["generated"] == recorder.text
