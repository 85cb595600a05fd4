"""How a run's output reads: an action's structured result (its
`output_schema`'s JSON) shows whole, as JSON, while a workflow's own `output:`
mapping shows field by field."""

from __future__ import annotations

import json

import jsonschema

from runtime.config import ComposeConfig
from runtime.webui.output import names_its_output
from tests.webui.conftest import OpenPage

CAT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "color": {"enum": ["black", "white", "orange", "grey"]},
    },
    "required": ["name", "color"],
}
STRUCTURED = f"""
    component:
      type: model
      task: chat-completion
      model: HuggingFaceTB/SmolLM2-135M-Instruct
      action:
        messages:
          - role: user
            content: ${{input.animal}} in JSON with keys name and color.
        max_output_length: 80
        streaming: true
        params:
          do_sample: false
        output_schema: {json.dumps(CAT)}
"""


async def test_a_structured_result_shows_as_json(open_page: OpenPage) -> None:
    async with open_page(STRUCTURED) as page:
        page.user.find(marker="input-animal").type("A cat")
        page.user.find(marker="run").click()
        await page.until(lambda: page.text("stats"))
        shown = json.loads(page.text("output-json"))
        jsonschema.validate(shown, CAT)
        assert page.element("output-json").visible
        assert page.element("output").visible is False or page.text("output") == ""
        assert not page.elements("output-field-color")


def test_only_an_output_the_file_names_reads_field_by_field(compose: ComposeConfig) -> None:
    base = """
        component:
          type: model
          task: chat-completion
          model: HuggingFaceTB/SmolLM2-135M-Instruct
          messages: [{role: user, content: hi}]
    """
    cases = {
        "": False,  # no jobs: the action's own result
        'workflow:\n  output: {answer: "${output}"}\n': True,
        "workflow:\n  job: {component: __component__}\n": False,
        'workflow:\n  job: {output: {answer: "${output}"}}\n': True,
        "workflow:\n  jobs: [{id: a}, {id: b}]\n": True,  # two final jobs: by id
        "workflow:\n  jobs: [{id: a}, {id: b, depends_on: [a]}]\n": False,
    }
    for workflow, named in cases.items():
        config = compose(base + "\n" + _indent(workflow))
        assert names_its_output(config.workflows[0]) is named, workflow


def _indent(text: str) -> str:
    return "".join(f"        {line}\n" for line in text.splitlines())
