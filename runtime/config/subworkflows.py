"""Workflow components (`type: workflow`): which workflows each workflow
runs through them, and the load-time checks of those runs: the workflow
exists here (or a queue worker runs it), and no workflow runs itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.config.normalize import action_display
from runtime.config.schema import ComposeConfig, JobConfig, WorkflowComponent

if TYPE_CHECKING:
    from runtime.config.checks import Checker


def dispatches_to_workers(config: ComposeConfig) -> bool:
    """Whether `controller.queue` is set: a workflow this file does not define
    is then run by a queue worker. Read by name, since the queue's settings
    belong to the queue (runtime.queue), not to this module."""
    return getattr(config.controller, "queue", None) is not None


def is_local(config: ComposeConfig, workflow_id: str) -> bool:
    """Whether this file defines the workflow (`__default__` included)."""
    try:
        config.workflow(workflow_id)
    except KeyError:
        return False
    return True


@dataclass(frozen=True)
class Call:
    """A workflow running another through a workflow component's action."""

    caller: str
    callee: str
    component: WorkflowComponent
    action_index: int


def calls(config: ComposeConfig) -> list[Call]:
    """Every run of a local workflow by another (or by itself), through the
    actions the workflows' jobs pick. An unknown component or action is the
    job checks' to report: it runs nothing here."""
    found = []
    for workflow in config.workflows:
        for job in workflow.jobs or [JobConfig()]:
            component_id = config.job_component(job)
            try:
                component = config.component(component_id) if component_id else None
                if not isinstance(component, WorkflowComponent):
                    continue
                action = component.action(job.action)
            except (KeyError, IndexError):
                continue
            if is_local(config, action.workflow):
                callee = config.workflow(action.workflow).id
                index = component.actions.index(action)
                found.append(Call(workflow.id, callee, component, index))
    return found


def check_workflow_components(
    checker: Checker,
    config: ComposeConfig,
    raw: list[tuple[Any, str]],
    known_workflows: list[str],
) -> None:
    """Unknown workflows (fine when a queue worker runs them) and cycles,
    each located at the action's `workflow` key. `raw` pairs each component
    of `config` with its data and display name; `known_workflows` holds the
    ids of workflows that did not convert too, so they are not "unknown"."""
    queued = dispatches_to_workers(config)
    where: dict[tuple[str, int], tuple[Any, str]] = {}
    for component, (data, display) in zip(config.components, raw, strict=True):
        if not isinstance(component, WorkflowComponent):
            continue
        for index, action in enumerate(component.actions):
            raw_action = data["actions"][index]
            at = action_display(display, action.id, len(component.actions))
            where[(component.id, index)] = (raw_action, at)
            known = action.workflow in known_workflows or is_local(config, action.workflow)
            if not known and not queued:
                listed = ", ".join(f"'{w}'" for w in known_workflows) or "none"
                checker.error(
                    f"unknown workflow '{action.workflow}' (this file's workflows: {listed}); "
                    "with 'controller.queue' set it would be dispatched to a queue worker",
                    raw_action,
                    "workflow",
                    f"{at}.workflow",
                )
    cycle = find_cycle(calls(config))
    if cycle:
        first = cycle[0]
        raw_action, at = where[(first.component.id, first.action_index)]
        trail = " → ".join([first.caller, *(call.callee for call in cycle)])
        checker.error(
            f"workflow '{first.caller}' runs itself through workflow components: {trail}",
            raw_action,
            "workflow",
            f"{at}.workflow",
        )


def find_cycle(edges: list[Call]) -> list[Call] | None:
    """The calls of one cycle, in order, or None when the workflows' calls
    form none (one cycle is enough to report: fixing it may fix the rest)."""
    graph: dict[str, list[Call]] = {}
    for call in edges:
        graph.setdefault(call.caller, []).append(call)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[Call]) -> list[Call] | None:
        state[node] = 1
        for call in graph.get(node, []):
            if state.get(call.callee) == 1:
                start = next(
                    (i for i, step in enumerate(path) if step.caller == call.callee), len(path)
                )
                return [*path[start:], call]
            if state.get(call.callee) is None:
                found = visit(call.callee, [*path, call])
                if found:
                    return found
        state[node] = 2
        return None

    for node in list(graph):
        if state.get(node) is None:
            found = visit(node, [])
            if found:
                return found
    return None
