"""Every YAML snippet of the two seed documents loads: alone when it is a
whole file, or inside a minimal file when it is a fragment."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from runtime.config import load_config
from runtime.workflow import workflow_inputs
from tests.conftest import CHAT_COMPONENT

SNIPPETS = Path(__file__).parent.parent / "data" / "seed_snippets"
SEEDS = Path(__file__).parents[3] / "shared" / "seeds"

# What a fragment needs around it to be a file: the seed's chat component
# (CHAT_COMPONENT) for its chat workflows, or a text generator.
TEXT_GENERATOR = """
component:
  id: text-generator
  type: model
  task: text-generation
  model: HuggingFaceTB/SmolLM3-3B
  text: ${input.prompt as text}
"""


def snippet_file(name: str, tmp_path: Path) -> list[Path]:
    text = (SNIPPETS / name).read_text()
    if name.startswith("text_01"):  # a bare `params:` mapping
        text = TEXT_GENERATOR + textwrap.indent(text, "  ")
    elif name.startswith("chat_04"):  # workflows that use the seed's component
        text = text + CHAT_COMPONENT
    elif name.startswith("text_05"):  # a workflow naming `text-generator`
        text = text + TEXT_GENERATOR
    path = tmp_path / "model-compose.yml"
    path.write_text(text)
    return [path]


@pytest.mark.parametrize("name", sorted(p.name for p in SNIPPETS.glob("*.yml")))
def test_every_seed_snippet_loads(name: str, tmp_path: Path) -> None:
    loaded = load_config(snippet_file(name, tmp_path))
    assert loaded.config.components
    for workflow in loaded.config.workflows:
        workflow_inputs(loaded.config, workflow)  # the schema can be inferred


def test_the_snippets_are_exactly_the_yaml_blocks_of_the_seed_documents() -> None:
    if not SEEDS.is_dir():
        pytest.skip("the seed documents are not beside this checkout")
    blocks = []
    for document in sorted(SEEDS.glob("*.txt")):
        blocks += re.findall(r"```yaml\n(.*?)```", document.read_text(), re.S)
    stored = [p.read_text() for p in sorted(SNIPPETS.glob("*.yml"))]
    assert sorted(blocks) == sorted(stored)


def test_the_or_alternatives_warn_that_the_later_model_wins(tmp_path: Path) -> None:
    loaded = load_config(snippet_file("chat_01_using_different_models.yml", tmp_path))
    assert loaded.config.components[0].model == "HuggingFaceH4/zephyr-7b-beta"
    assert [str(w).split(": ", 1)[1] for w in loaded.warnings] == [
        "duplicate key 'model': the later value (line 6) wins"
    ]


def test_pad_token_id_is_accepted_with_one_warning(tmp_path: Path) -> None:
    loaded = load_config(snippet_file("chat_02_adding_model_parameters.yml", tmp_path))
    assert [w.message for w in loaded.warnings] == [
        "'pad_token_id' has no meaning on llama.cpp and is ignored"
    ]
    assert loaded.warnings[0].location.line == 15


def test_the_templated_default_with_a_colon_loads_as_one_binding(tmp_path: Path) -> None:
    loaded = load_config(snippet_file("text_06_template_based_generation.yml", tmp_path))
    action = loaded.config.components[0].actions[0]
    assert action.text == '${input.template | "Generate text about: ${input.topic}"}'
    fields = {f.name: f for f in workflow_inputs(loaded.config, loaded.config.workflows[0])}
    assert not fields["template"].required


def test_role_based_workflows_read_their_own_inputs(tmp_path: Path) -> None:
    loaded = load_config(snippet_file("chat_04_role_based_workflows.yml", tmp_path))
    config = loaded.config
    names = {w.id: [f.name for f in workflow_inputs(config, w)] for w in config.workflows}
    assert names == {
        "customer-support": ["customer_question"],
        "code-reviewer": ["code_to_review"],
    }


def test_component_level_action_fields_become_its_action(tmp_path: Path) -> None:
    loaded = load_config(snippet_file("text_03_adjusting_generation_parameters.yml", tmp_path))
    action = loaded.config.components[0].actions[0]
    assert action.text == "${input.prompt as text}"
    assert action.params["max_output_length"] == 1024
