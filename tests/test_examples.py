"""Every example folder is a valid compose file with a README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from runtime.config.schema import ControllerConfig

EXAMPLES = Path(__file__).parent.parent / "examples"
COMMAND = str(Path(sys.executable).parent / "model-compose")
# Folders holding a compose file, at any depth (examples/queue/front).
FOLDERS = sorted(str(p.parent.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("model-compose.yml"))
QUEUE_IN_SCHEMA = "queue" in {f.name for f in msgspec.structs.fields(ControllerConfig)}


def test_the_issue_lists_examples_are_all_here() -> None:
    assert {
        "chat-completion",
        "text-generation",
        "quickstart",
        "quickstart-text",
        "generation-params",
        "multi-turn",
        "chat-template",
        "text-template",
        "role-based",
        "batch-generation",
    } <= set(FOLDERS)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_example_validates_and_has_a_readme(folder: str) -> None:
    if folder.startswith("queue/") and not QUEUE_IN_SCHEMA:
        pytest.skip("controller.queue is not in the schema yet")
    result = subprocess.run(
        [COMMAND, "validate", "-f", str(EXAMPLES / folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{EXAMPLES / folder / 'model-compose.yml'}: ok")
    assert (EXAMPLES / folder / "README.md").is_file()


def test_the_seed_files_are_kept_verbatim() -> None:
    text = (EXAMPLES / "text-generation" / "model-compose.yml").read_text()
    assert "model: HuggingFaceTB/SmolLM3-3B" in text
    assert "text: ${input.prompt as text}" in text
    assert "max_output_length: 32768" in text
