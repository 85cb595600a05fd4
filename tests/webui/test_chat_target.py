"""Which workflows get a chat view, and what a chat turn takes from them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from runtime.config import load_config
from runtime.config.schema import ComposeConfig
from runtime.engine.types import ChatMessage
from runtime.webui.chat_target import chat_request, chat_target, default_system_prompt
from tests.webui.composes import BATCH, TWO_WORKFLOWS

EXAMPLES = Path(__file__).parents[2] / "examples"


def load(tmp_path: Path, text: str) -> ComposeConfig:
    path = tmp_path / "model-compose.yml"
    path.write_text(textwrap.dedent(text))
    return load_config([path], env={}).config


def test_only_workflows_that_run_one_chat_action_once_get_a_chat(tmp_path: Path) -> None:
    config = load(tmp_path, TWO_WORKFLOWS)
    assert chat_target(config, config.workflow("chat")) is not None
    assert chat_target(config, config.workflow("text")) is None
    batch = load(tmp_path, BATCH)
    assert chat_target(batch, batch.workflow(None)) is None


def test_the_system_prompt_comes_from_the_workflow() -> None:
    quickstart = load_config([EXAMPLES / "quickstart"], env={}).config
    target = chat_target(quickstart, quickstart.workflow(None))
    assert target is not None
    assert default_system_prompt(target, {}) == ""  # required input: nothing to show
    multi_turn = load_config([EXAMPLES / "multi-turn"], env={}).config
    target = chat_target(multi_turn, multi_turn.workflow(None))
    assert target is not None
    assert default_system_prompt(target, {}) == "You are a helpful assistant."
    roles = load_config([EXAMPLES / "role-based"], env={}).config
    target = chat_target(roles, roles.workflow("code-reviewer"))
    assert target is not None
    assert default_system_prompt(target, {}).startswith("You are a senior software engineer.")


def test_a_turn_takes_the_actions_settings_rendered_with_the_form_input(tmp_path: Path) -> None:
    config = load(tmp_path, TWO_WORKFLOWS)
    target = chat_target(config, config.workflow("chat"))
    assert target is not None
    messages = [ChatMessage("user", "Hi")]
    request = chat_request(target, messages, {})
    assert request.messages == messages
    assert request.max_tokens == 8 and request.sampling.greedy
    warm = chat_request(target, messages, {"temperature": 0.9}).sampling
    assert warm.temperature == 0.9 and not warm.greedy
