"""Expand model-compose's shorthands so the schema sees one shape.

`component`→`components`, `workflow`→`workflows`, `job`→`jobs`,
`action`→`actions`, `adapter`→`adapters`; controller-level `type/host/port/...`
→ one adapter; action fields written directly on a component → its one action;
entity mappings keyed by id → lists; inline job components → `components`.
Each entity gets a display name built from its id, for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from runtime.config.convert import kind
from runtime.config.positions import Positions
from runtime.config.schema import (
    ChatCompletionAction,
    ControllerConfig,
    HttpServerAdapter,
    ModelComponent,
    TextGenerationAction,
    WorkflowAction,
    WorkflowComponent,
)
from runtime.errors import Location, Problem


@dataclass
class Entity:
    """A config section converted on its own, so errors can name it by id."""

    data: dict[str, Any]
    display: str  # e.g. "components[chat]" or "component"
    # The container and key that hold it: where to point when it is not a mapping.
    at: tuple[Any, Any] = (None, None)


@dataclass
class Normalized:
    data: dict[str, Any]
    components: list[Entity]
    workflows: list[Entity]
    problems: list[Problem]


def _field_names(struct: type[msgspec.Struct]) -> set[str]:
    return {f.name for f in msgspec.structs.fields(struct)}


COMPONENT_FIELDS = _field_names(ModelComponent)
ACTION_FIELDS = (_field_names(ChatCompletionAction) | _field_names(TextGenerationAction)) - {"id"}
WORKFLOW_COMPONENT_FIELDS = _field_names(WorkflowComponent)
WORKFLOW_ACTION_FIELDS = _field_names(WorkflowAction) - {"id"}
ADAPTER_FIELDS = _field_names(HttpServerAdapter)
CONTROLLER_FIELDS = _field_names(ControllerConfig)

DEFAULT_IDS = {"components": "__component__", "workflows": "__workflow__", "jobs": "__job__"}


class Normalizer:
    def __init__(self, positions: Positions) -> None:
        self.positions = positions
        self.problems: list[Problem] = []

    def problem(self, message: str, container: Any, key: Any = None, path: str = "") -> None:
        file, line = self.positions.locate(container, key)
        self.problems.append(Problem(message, Location(file, line, path or None)))

    def plural(self, parent: dict[str, Any], singular: str, plural: str, path: str) -> list[Any]:
        """Merge `singular:` into `plural:`; accept a mapping keyed by id."""
        if singular in parent and plural in parent:
            self.problem(
                f"write either '{singular}' or '{plural}', not both", parent, singular, path
            )
        if singular in parent:
            file, line = self.positions.locate(parent, singular)
            value = parent.pop(singular)
            items = value if isinstance(value, list) else [value]
            if items is not value and file is not None and line is not None:
                self.positions.add_container(items, file, line)
            parent[plural] = items
            self.positions.copy_entry(parent, plural, parent, singular)
            return items
        value = parent.get(plural)
        if value is None:
            parent[plural] = []
        elif isinstance(value, dict):
            items = []
            self.positions.adopt(items, value)
            for key, item in value.items():
                if isinstance(item, dict):
                    item.setdefault("id", key)
                self.positions.copy_entry(items, len(items), value, key)
                items.append(item)
            parent[plural] = items
        elif not isinstance(value, list):
            self.problem(
                f"expected a list of {plural}, or a mapping of them by id, got {kind(value)}",
                parent,
                plural,
                f"{path}.{plural}" if path else plural,
            )
            parent[plural] = []
        return parent[plural]

    def assign_ids(self, items: list[Any], kind: str, owner: Any, path: str) -> None:
        """The default id when there is one entity; several need ids."""
        unnamed = [item for item in items if isinstance(item, dict) and "id" not in item]
        if len(items) == 1 and unnamed:
            unnamed[0]["id"] = DEFAULT_IDS[kind]
        elif unnamed:
            self.problem(
                f"every entry of '{kind}' needs an 'id' when there are several",
                unnamed[0],
                None,
                path,
            )

    def controller(self, data: dict[str, Any]) -> None:
        if "controller" in data and data["controller"] is None:
            # `controller:` with every line under it commented out: the defaults.
            file, line = self.positions.locate(data, "controller")
            data["controller"] = {}
            if file is not None and line is not None:
                self.positions.add_container(data["controller"], file, line)
        controller = data.get("controller")
        if controller is None:
            return
        if not isinstance(controller, dict):
            return  # the schema reports the type error
        legacy = {
            k: controller[k]
            for k in ("type", "host", "port", "base_path", "origins", "allowed_hosts")
            if k in controller
        }
        adapters = self.plural(controller, "adapter", "adapters", "controller")
        if legacy:
            if adapters:
                self.problem(
                    "put 'type/host/port/base_path' under 'adapter', not on the controller as well",
                    controller,
                    next(iter(legacy)),
                    "controller",
                )
            adapter = {k: controller.pop(k) for k in legacy}
            self.positions.copy_of(adapter, controller)
            if not adapters:
                adapters.append(adapter)
        for adapter in adapters:
            # An adapter's `type` picks its schema; http-server when unwritten.
            if isinstance(adapter, dict) and "type" not in adapter:
                adapter["type"] = "http-server"
            # model-compose's singular `workflow: x` on a queue subscriber.
            if (
                isinstance(adapter, dict)
                and isinstance(adapter.get("workflow"), str)
                and "workflows" not in adapter
            ):
                adapter["workflows"] = [adapter.pop("workflow")]

    def component(self, component: dict[str, Any], display: str) -> None:
        actions = self.plural(component, "action", "actions", display)
        runs_workflow = component.get("type") == "workflow"
        action_fields, component_fields = (
            (WORKFLOW_ACTION_FIELDS, WORKFLOW_COMPONENT_FIELDS)
            if runs_workflow
            else (ACTION_FIELDS, COMPONENT_FIELDS)
        )
        inline = [k for k in component if k in action_fields and k not in component_fields]
        if inline and actions:
            self.problem(
                "write the action's fields under 'action:' or directly on the component, not both",
                component,
                inline[0],
                display,
            )
            return
        if not actions and self.positions.locate(actions) == (None, None):
            # The list the loader made: an error about its action (a missing
            # key) points at the component, or at the action's first key.
            self.positions.adopt(actions, component)
        if inline:
            # The seeds write `text:` and `params:` directly on the component.
            action = {k: component.pop(k) for k in inline}
            self.positions.adopt(action, component)
            for key in inline:
                self.positions.copy_entry(action, key, component, key)
            self.positions.copy_entry(actions, 0, component, inline[0])
            actions.append(action)
        if not actions and runs_workflow:
            # No natural default: the converter then says 'workflow' is missing.
            empty: dict[str, Any] = {}
            self.positions.adopt(empty, component)
            actions.append(empty)
        elif not actions:
            task = component.get("task")
            # Components without an action (seed "Using Different Models") take
            # the task's natural input.
            default = (
                {"messages": "${input.messages}"}
                if task == "chat-completion"
                else {"prompt": "${input.prompt}"}
            )
            self.positions.adopt(default, component)
            actions.append(default)
        for index, action in enumerate(actions):
            if isinstance(action, dict) and "id" not in action and len(actions) > 1:
                self.problem(
                    "every action needs an 'id' when a component has several",
                    action,
                    None,
                    f"{display}.actions[{index}]",
                )

    def run(self, data: dict[str, Any]) -> Normalized:
        self.controller(data)
        components = self.plural(data, "component", "components", "")
        workflows = self.plural(data, "workflow", "workflows", "")
        self.assign_ids(components, "components", data, "components")
        self.assign_ids(workflows, "workflows", data, "workflows")
        component_entities = []
        for index, component in enumerate(list(components)):
            display = entity_display("components", component, index)
            if isinstance(component, dict):
                self.component(component, display)
            component_entities.append(Entity(component, display, (components, index)))
        workflow_entities = []
        for index, workflow in enumerate(workflows):
            display = entity_display("workflows", workflow, index)
            if isinstance(workflow, dict):
                jobs = self.plural(workflow, "job", "jobs", display)
                self.assign_ids(jobs, "jobs", workflow, display)
                for job_index, job in enumerate(jobs):
                    if isinstance(job, dict) and isinstance(job.get("component"), dict):
                        component_entities.append(
                            self.lift_component(workflow, job, display, job_index, components)
                        )
            workflow_entities.append(Entity(workflow, display, (workflows, index)))
        return Normalized(data, component_entities, workflow_entities, self.problems)

    def lift_component(
        self,
        workflow: dict[str, Any],
        job: dict[str, Any],
        display: str,
        job_index: int,
        components: list[Any],
    ) -> Entity:
        """An inline component becomes a named one that the job refers to."""
        inline = job["component"]
        component_id = inline.get("id") or f"{workflow.get('id')}.{job.get('id')}"
        inline["id"] = component_id
        job["component"] = component_id
        job_display = f"{display}.{entity_display('jobs', job, job_index)}.component"
        self.component(inline, job_display)
        components.append(inline)
        return Entity(inline, job_display, (job, "component"))


SINGULAR = {"components": "component", "workflows": "workflow", "jobs": "job"}


def entity_display(kind: str, item: Any, index: int) -> str:
    """How errors name an entity: by id, or by the singular key for the one
    default entity (`component`), never by a bare list index when avoidable."""
    if isinstance(item, dict) and item.get("id") == DEFAULT_IDS.get(kind):
        return SINGULAR[kind]
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        return f"{kind}[{item['id']}]"
    return f"{kind}[{index}]"


def action_display(component_display: str, action_id: str, actions: int) -> str:
    """How errors name a component's action: `.action` for its only one,
    else `.actions[id]`."""
    if actions > 1:
        return f"{component_display}.actions[{action_id}]"
    return f"{component_display}.action"
