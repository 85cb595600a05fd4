"""Workflow components (`type: workflow`): their shorthands, and the load
checks of the workflows they run, each located at its line."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest

from runtime.config import (
    ComposeConfig,
    ModelComponent,
    WorkflowAction,
    WorkflowComponent,
    WorkflowConfig,
    load_config,
)
from runtime.config.checks import Checker
from runtime.config.positions import Positions
from runtime.config.schema import ControllerConfig
from runtime.config.subworkflows import check_workflow_components
from tests.config.test_loader import config_of, problems

EXAMPLES = Path(__file__).parents[2] / "examples"
FRONTS = ["queue/front", "queue/front-stream"]
QUEUE_IN_SCHEMA = "queue" in {f.name for f in msgspec.structs.fields(ControllerConfig)}

# One line, so that it can be inserted at any indentation.
MODEL = '- {id: writer, type: model, task: text-generation, model: ./m.gguf, prompt: "${input.p}"}'


def without_queue(text: str) -> str:
    """A front file without its `controller.queue` block."""
    return re.sub(r"\n  queue:\n(    .*\n)+", "\n", text)


@pytest.mark.parametrize("folder", FRONTS)
def test_the_queue_front_files_fail_only_on_the_workflow_they_dispatch_without_a_queue(
    tmp_path: Path, folder: str
) -> None:
    text = without_queue((EXAMPLES / folder / "model-compose.yml").read_text())
    wanted = "echo" if folder == "queue/front" else "chat"
    assert problems(tmp_path, text) == [
        f"19: component.action.workflow: unknown workflow '{wanted}' (this file's workflows: "
        "'__workflow__'); with 'controller.queue' set it would be dispatched to a queue worker"
    ]


@pytest.mark.skipif(not QUEUE_IN_SCHEMA, reason="controller.queue is not in the schema yet")
@pytest.mark.parametrize("folder", FRONTS)
def test_the_queue_front_files_load_unchanged(folder: str) -> None:
    config = load_config([EXAMPLES / folder]).config
    (component,) = config.components
    assert isinstance(component, WorkflowComponent)
    assert config.model_components == []
    assert config.workflows[0].jobs[0].type == "component"


def test_a_queue_lets_a_workflow_component_name_a_workflow_the_file_does_not_define() -> None:
    # Built directly: the check reads `controller.queue` whatever its schema.
    component = WorkflowComponent(type="workflow", actions=[WorkflowAction(workflow="echo")])
    raw = [({"actions": [{"workflow": "echo"}]}, "component")]
    for queue, found in ((None, 1), (SimpleNamespace(driver="redis"), 0)):
        config = ComposeConfig(
            controller=SimpleNamespace(queue=queue),  # type: ignore[arg-type]
            components=[component],
            workflows=[WorkflowConfig()],
        )
        checker = Checker(Positions())
        check_workflow_components(checker, config, raw, ["__workflow__"])
        assert len(checker.problems) == found


def test_a_workflow_component_takes_its_action_fields_on_the_component(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        f"""
        workflows:
          - id: front
            job: {{type: component, component: relay}}
          - id: back
            job: {{component: writer}}
        components:
          - id: relay
            type: workflow
            workflow: back
            input: {{prompt: "${{input.text}}"}}
            output: {{text: "${{output}}"}}
          {MODEL}
        """,
    )
    relay = config.component("relay")
    assert isinstance(relay, WorkflowComponent)
    (action,) = relay.actions
    assert action == WorkflowAction(
        workflow="back", input={"prompt": "${input.text}"}, output={"text": "${output}"}
    )
    assert [c.id for c in config.model_components] == ["writer"]
    assert isinstance(config.component("writer"), ModelComponent)
    assert config.workflow("front").jobs[0].type == "component"


def test_an_unknown_workflow_is_located_and_the_known_ones_are_listed(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        f"""
        workflows:
          - id: front
            job: {{component: relay}}
          - id: back
            job: {{component: writer}}
        components:
          - id: relay
            type: workflow
            action:
              workflow: bakc
          {MODEL}
        """,
    ) == [
        "10: components[relay].action.workflow: unknown workflow 'bakc' (this file's workflows: "
        "'front', 'back'); with 'controller.queue' set it would be dispatched to a queue worker"
    ]


def test_a_workflow_that_runs_itself_is_refused(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """
        workflow:
          id: loop
          job: {component: again}
        component:
          id: again
          type: workflow
          workflow: loop
        """,
    ) == [
        "7: components[again].action.workflow: workflow 'loop' runs itself through "
        "workflow components: loop → loop"
    ]


def test_workflows_that_run_each_other_are_a_cycle(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        f"""
        workflows:
          - id: a
            job: {{component: to-b}}
          - id: b
            jobs:
              - id: write
                component: writer
              - id: back
                component: to-a
                depends_on: [write]
        components:
          - id: to-b
            type: workflow
            workflow: b
          - id: to-a
            type: workflow
            workflow: a
          {MODEL}
        """,
    )
    assert found == [
        "14: components[to-b].action.workflow: workflow 'a' runs itself through "
        "workflow components: a → b → a"
    ]


def test_a_workflow_run_twice_but_not_by_itself_is_no_cycle(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        f"""
        workflows:
          - id: twice
            jobs:
              - {{id: one, component: relay}}
              - {{id: two, component: relay, depends_on: [one]}}
          - id: back
            job: {{component: writer}}
        components:
          - id: relay
            type: workflow
            workflow: back
          {MODEL}
        """,
    )
    assert [w.id for w in config.workflows] == ["twice", "back"]


@pytest.mark.parametrize(
    ("component", "line", "path"),
    [
        ("type: workflow\n  action:\n    input: ${input}\n", 5, "component.action"),
        ("type: workflow\n  output: ${output}\n", 5, "component.action"),
        ("type: workflow\n", 3, "component.action"),
    ],
)
def test_a_workflow_action_without_a_workflow_is_refused(
    tmp_path: Path, component: str, line: int, path: str
) -> None:
    text = f"workflow:\n  job: {{type: component}}\ncomponent:\n  {component}"
    found = problems(tmp_path, text)
    assert found == [f"{line}: {path}: missing required key 'workflow'"]


def test_a_workflow_component_has_no_model_keys(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """
        workflow:
          id: main
          job: {component: relay}
        component:
          id: relay
          type: workflow
          model: ./m.gguf
          workflow: main
        """,
    )[0].startswith("7: components[relay]: unknown key 'model'")
