"""Every example folder is a valid compose file with a README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
COMMAND = str(Path(sys.executable).parent / "model-compose")
FOLDERS = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())


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
