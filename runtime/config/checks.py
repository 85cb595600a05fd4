"""Rules that span several keys or sections: ids, references, cycles,
generation params and `${...}` syntax. Every problem is located."""

from __future__ import annotations

from typing import Any

from convert.reference import parse_model_reference
from runtime.binding import compile_template
from runtime.config.convert import suggest
from runtime.config.normalize import action_display, entity_display
from runtime.config.positions import Positions
from runtime.config.schema import (
    ComposeConfig,
    HttpServerAdapter,
    ModelComponent,
    QueueSubscriberAdapter,
    TextGenerationAction,
    WorkflowConfig,
)
from runtime.config.units import parse_duration, parse_keep_alive, parse_size
from runtime.engine.json_schema import SchemaError, schema_grammar
from runtime.errors import BindingSyntaxError, Location, Problem
from runtime.host_names import host_pattern_problem
from runtime.tasks.params import IGNORED_PARAMS, KNOWN_PARAMS, check_param_names


class Checker:
    def __init__(self, positions: Positions, known_components: list[str] | None = None) -> None:
        self.positions = positions
        self.known_components = known_components
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def at(self, container: Any, key: Any = None, path: str = "") -> Location:
        file, line = self.positions.locate(container, key)
        return Location(file, line, path or None)

    def error(self, message: str, container: Any, key: Any = None, path: str = "") -> None:
        self.problems.append(Problem(message, self.at(container, key, path)))

    def bindings(self, value: Any, container: Any = None, key: Any = None, path: str = "") -> None:
        """Parse every `${...}` once now, so a typo fails at load, not mid-run."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.bindings(v, value, k, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list):
            for index, v in enumerate(value):
                if path.endswith(".actions") and len(value) == 1:
                    label = f"{path.removesuffix('.actions')}.action"
                else:
                    named = isinstance(v, dict) and isinstance(v.get("id"), str)
                    label = f"{path}[{v['id'] if named else index}]"
                self.bindings(v, value, index, label)
        elif isinstance(value, str) and "${" in value:
            try:
                compile_template(value)
            except BindingSyntaxError as error:
                where = f"{_excerpt(value, error.offset)} (column {error.offset + 1})"
                self.error(
                    f"{error.reason} in {where}",
                    container,
                    key,
                    path,
                )

    def controller(self, config: ComposeConfig, raw: Any) -> None:
        """Durations and sizes are checked now, not when the server needs them."""
        controller = config.controller
        for key, parse in (
            ("shutdown_timeout", parse_duration),
            ("task_retention", parse_duration),
            ("write_timeout", parse_duration),
            ("max_request_size", parse_size),
        ):
            try:
                parse(getattr(controller, key))
            except ValueError as error:
                self.error(str(error), raw, key, f"controller.{key}")
        raw_adapters = raw.get("adapters") if isinstance(raw, dict) else None
        for index, adapter in enumerate(controller.adapters):
            if not isinstance(adapter, HttpServerAdapter):
                continue
            raw_adapter = raw_adapters[index] if isinstance(raw_adapters, list) else {}
            where = (
                "controller.adapter"
                if len(controller.adapters) == 1
                else (f"controller.adapters[{index}]")
            )
            self.allowed_hosts(adapter.allowed_hosts, raw_adapter, where)
        if controller.webui is not None:
            raw_webui = raw.get("webui") if isinstance(raw, dict) else None
            self.allowed_hosts(controller.webui.allowed_hosts, raw_webui, "controller.webui")
        if controller.max_tasks < 1:
            self.error("max_tasks must be at least 1", raw, "max_tasks", "controller.max_tasks")
        if controller.max_concurrent_count < 0:
            self.error(
                "max_concurrent_count must be 0 (unbounded) or more",
                raw,
                "max_concurrent_count",
                "controller.max_concurrent_count",
            )

    def queue(self, config: ComposeConfig, raw: Any) -> None:
        """controller.queue and a queue-subscriber adapter: durations, sizes,
        bounds, and the workflows a worker serves."""
        controller = config.controller
        raw_adapters = raw.get("adapters") if isinstance(raw, dict) else None
        sections: list[tuple[Any, Any, str]] = []
        if controller.queue is not None:
            sections.append((controller.queue, raw.get("queue"), "controller.queue"))
        for index, adapter in enumerate(controller.adapters):
            if isinstance(adapter, QueueSubscriberAdapter) and isinstance(raw_adapters, list):
                sections.append((adapter, raw_adapters[index], f"controller.adapters[{index}]"))
        for section, data, path in sections:
            for key in ("visibility_timeout", "timeout", "blob_ttl", "result_ttl", "pop_timeout"):
                value = getattr(section, key, None)
                if value is None:
                    continue
                try:
                    seconds = parse_duration(value)
                except ValueError as error:
                    self.error(str(error), data, key, f"{path}.{key}")
                    continue
                if seconds <= 0 and key in ("visibility_timeout", "pop_timeout"):
                    self.error(f"{key} must be more than 0", data, key, f"{path}.{key}")
            size = getattr(section, "max_blob_size", None)
            if size is not None:
                try:
                    parse_size(size)
                except ValueError as error:
                    self.error(str(error), data, "max_blob_size", f"{path}.max_blob_size")
            bounds = (
                ("max_attempts", 1, None),
                ("max_queue", 1, None),
                ("max_concurrent_count", 1, None),
                ("port", 1, 65535),
                ("metrics_port", 1, 65535),
                ("database", 0, 15),
            )
            for key, low, high in bounds:
                value = getattr(section, key, None)
                if value is None or (low <= value and (high is None or value <= high)):
                    continue
                wanted = f"from {low} to {high}" if high is not None else f"at least {low}"
                self.error(f"{key} must be {wanted}, got {value}", data, key, f"{path}.{key}")
            if isinstance(data, dict) and "url" in data and "host" in data:
                self.error("write either 'url' or 'host', not both", data, "host", path)
            workflows = getattr(section, "workflows", None) or []
            known = [w.id for w in config.workflows]
            raw_workflows = data.get("workflows") if isinstance(data, dict) else None
            for index, workflow_id in enumerate(workflows):
                if workflow_id not in known:
                    self.error(
                        f"unknown workflow '{workflow_id}'{suggest(workflow_id, known)} "
                        f"(this file defines: {', '.join(known) or 'none'})",
                        raw_workflows if isinstance(raw_workflows, list) else data,
                        index if isinstance(raw_workflows, list) else "workflows",
                        f"{path}.workflows",
                    )

    def allowed_hosts(self, patterns: list[str], raw: Any, where: str) -> None:
        raw_list = raw.get("allowed_hosts") if isinstance(raw, dict) else None
        for index, pattern in enumerate(patterns):
            problem = host_pattern_problem(pattern)
            if problem is not None:
                container = raw_list if isinstance(raw_list, list) else raw
                key = index if isinstance(raw_list, list) else "allowed_hosts"
                self.error(problem, container, key, f"{where}.allowed_hosts[{index}]")

    def duplicates(self, raw_items: list[Any], kind: str, path: str) -> bool:
        """Report ids used twice; True when there are any."""
        seen: set[str] = set()
        found = False
        for item in raw_items:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                if item["id"] in seen:
                    self.error(f"duplicate {kind} id '{item['id']}'", item, "id", path)
                    found = True
                seen.add(item["id"])
        return found

    def kv_cache_size(self, component: ModelComponent, data: Any, display: str) -> None:
        """A pool must hold at least one full context (engine.spec says so
        again at load time, when `context_length: auto` is known)."""
        options = component.options
        context = component.context_length or component.n_ctx
        if options is not None:
            context = context or options.context_length or options.n_ctx
        raw_options = data.get("options") if isinstance(data, dict) else None
        for owner, raw, where in (
            (component, data, display),
            (options, raw_options, f"{display}.options"),
        ):
            size = getattr(owner, "kv_cache_size", None)
            if size is None:
                continue
            if size < 1:
                problem = "kv_cache_size must be a positive number of tokens"
            elif isinstance(context, int) and context > size:
                problem = (
                    f"kv_cache_size ({size} tokens) is smaller than context_length ({context}): "
                    "one conversation could not fill its context"
                )
            else:
                continue
            self.error(problem, raw, "kv_cache_size", f"{where}.kv_cache_size")

    def components(self, config: ComposeConfig, raw: list[tuple[Any, str]]) -> None:
        for component, (data, display) in zip(config.components, raw, strict=True):
            if not isinstance(component, ModelComponent):
                continue  # a workflow component: see config.subworkflows
            if component.parallel is not None and component.parallel < 1:
                self.error("parallel must be at least 1", data, "parallel", f"{display}.parallel")
            self.kv_cache_size(component, data, display)
            if component.max_queue < 0:
                self.error("max_queue must be 0 or more", data, "max_queue", f"{display}.max_queue")
            if component.reasoning_budget is not None and component.reasoning_budget < 0:
                self.error(
                    "reasoning_budget must be 0 or more",
                    data,
                    "reasoning_budget",
                    f"{display}.reasoning_budget",
                )
            self.keep_alive(component, data, display)
            try:
                parse_model_reference(component.model)
            except ValueError as error:
                self.error(str(error), data, "model", f"{display}.model")
            for index, action in enumerate(component.actions):
                raw_action = data["actions"][index]
                where = action_display(display, action.id, len(component.actions))
                self.params(action.params, raw_action, where)
                self.output_schema(action.output_schema, raw_action, where)
                budget = action.reasoning_budget
                if isinstance(budget, int) and budget < 0:
                    self.error(
                        "reasoning_budget must be 0 or more", raw_action, "reasoning_budget", where
                    )
                if isinstance(action, TextGenerationAction):
                    if action.prompt is not None and action.text is not None:
                        self.error(
                            "write 'prompt' or 'text' (its alias), not both",
                            raw_action,
                            "text",
                            where,
                        )
                    elif action.prompt is None and action.text is None:
                        self.error(
                            "a text-generation action needs 'prompt' (or 'text')",
                            raw_action,
                            None,
                            where,
                        )
                elif action.messages is None:
                    self.error("a chat-completion action needs 'messages'", raw_action, None, where)

    def keep_alive(self, component: ModelComponent, data: dict[str, Any], display: str) -> None:
        """Checked now, not when the model first goes idle."""
        written = [(component.keep_alive, data, display)]
        if component.options is not None:
            written.append((component.options.keep_alive, data["options"], f"{display}.options"))
        for value, container, where in written:
            try:
                parse_keep_alive(value)
            except ValueError as error:
                self.error(str(error), container, "keep_alive", f"{where}.keep_alive")

    def params(self, params: dict[str, Any], raw_action: dict[str, Any], where: str) -> None:
        raw_params = raw_action.get("params", {})
        ignored, unknown = check_param_names(params)
        for name in ignored:
            self.warnings.append(
                Problem(
                    f"'{name}' has no meaning on llama.cpp and is ignored",
                    self.at(raw_params, name, f"{where}.params.{name}"),
                )
            )
        for name in unknown:
            hint = suggest(name, KNOWN_PARAMS | IGNORED_PARAMS)
            self.error(
                f"unknown generation parameter '{name}'{hint}", raw_params, name, f"{where}.params"
            )

    def output_schema(self, schema: Any, raw_action: dict[str, Any], where: str) -> None:
        """A schema the grammar can enforce, checked now, the problem located
        at its own line; one with bindings is checked once they render."""
        if schema is None or has_bindings(schema):
            return
        if isinstance(schema, str):
            self.error(
                "output_schema must be a JSON schema (a mapping) or a ${...} binding giving one",
                raw_action,
                "output_schema",
                where,
            )
            return
        try:
            schema_grammar(schema)
        except SchemaError as error:
            container, key = raw_action, "output_schema"
            for step in error.path:
                inner = container.get(key) if isinstance(container, dict) else None
                if not isinstance(inner, dict | list) or not _has(inner, step):
                    break
                container, key = inner, step
            self.error(str(error), container, key, f"{where}.output_schema")

    def workflows(self, config: ComposeConfig, raw: list[tuple[Any, str]]) -> None:
        component_ids = self.known_components or [c.id for c in config.components]
        defaults = [w for w in config.workflows if w.default]
        if len(defaults) > 1:
            self.error(
                "only one workflow can be 'default: true', found "
                + ", ".join(f"'{w.id}'" for w in defaults),
                raw[0][0],
                None,
                "workflows",
            )
        for workflow, (data, display) in zip(config.workflows, raw, strict=True):
            duplicate_jobs = self.duplicates(data.get("jobs", []), "job", display)
            if not workflow.jobs and not component_ids:
                self.error(
                    "the file has no component for this workflow to run: "
                    "add a 'component:' section",
                    data,
                    None,
                    display,
                )
            elif not workflow.jobs and len(component_ids) != 1:
                self.error(
                    f"this workflow has no jobs, so it needs exactly one component, "
                    f"but the file has {len(component_ids)}",
                    data,
                    None,
                    display,
                )
            raw_jobs = data.get("jobs", [])
            for index, (job, raw_job) in enumerate(zip(workflow.jobs, raw_jobs, strict=True)):
                where = f"{display}.{entity_display('jobs', raw_job, index)}"
                self.job(config, workflow, job, raw_job, where)
            if not duplicate_jobs:  # a cycle through a reused id would only be noise
                self.cycles(workflow, data, display)

    def job(
        self, config: ComposeConfig, workflow: WorkflowConfig, job: Any, raw_job: Any, where: str
    ) -> None:
        ids = self.known_components or [c.id for c in config.components]
        if job.component is None and not ids:
            self.error(
                "the file has no component for this job to run: add a 'component:' section",
                raw_job,
                None,
                where,
            )
        elif job.component is None and len(ids) != 1:
            self.error(
                f"this job names no component and the file has {len(ids)}; add 'component: <id>'",
                raw_job,
                None,
                where,
            )
        elif job.component is not None and job.component not in ids:
            self.error(
                f"unknown component '{job.component}'{suggest(job.component, ids)}",
                raw_job,
                "component",
                where,
            )
        elif any(c.id == (job.component or ids[0]) for c in config.components):
            component = config.component(job.component or ids[0])
            actions = [a.id for a in component.actions]
            if job.action not in (None, "__default__", *actions):
                self.error(
                    f"component '{component.id}' has no action '{job.action}'"
                    f"{suggest(job.action, actions)}",
                    raw_job,
                    "action",
                    where,
                )
        job_ids = [j.id for j in workflow.jobs]
        for dependency in job.depends_on:
            if dependency not in job_ids:
                self.error(
                    f"depends on unknown job '{dependency}'{suggest(dependency, job_ids)}",
                    raw_job,
                    "depends_on",
                    where,
                )
        if isinstance(job.repeat_count, int) and job.repeat_count < 0:
            self.error("repeat_count must be 0 or more", raw_job, "repeat_count", where)

    def cycles(self, workflow: WorkflowConfig, data: Any, display: str) -> None:
        graph = {job.id: [d for d in job.depends_on] for job in workflow.jobs}
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done

        def visit(node: str, trail: list[str]) -> list[str] | None:
            state[node] = 1
            for nxt in graph.get(node, []):
                if state.get(nxt) == 1:
                    return [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                if nxt in graph and state.get(nxt) is None:
                    found = visit(nxt, [*trail, nxt])
                    if found:
                        return found
            state[node] = 2
            return None

        for job_id in graph:
            if state.get(job_id) is None:
                cycle = visit(job_id, [job_id])
                if cycle:
                    raw_job = next(j for j in data["jobs"] if j.get("id") == cycle[0])
                    self.error(
                        "jobs depend on each other in a cycle: " + " → ".join(cycle),
                        raw_job,
                        "depends_on",
                        f"{display}.jobs[{cycle[0]}]",
                    )
                    return


def has_bindings(value: Any) -> bool:
    """Whether a `${...}` appears anywhere in `value`."""
    if isinstance(value, dict):
        return any(has_bindings(v) for v in value.values())
    if isinstance(value, list):
        return any(has_bindings(v) for v in value)
    return isinstance(value, str) and "${" in value


def _has(container: dict[Any, Any] | list[Any], key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(key, int) and 0 <= key < len(container)


def _excerpt(text: str, offset: int, width: int = 60) -> str:
    """`text` quoted, or the part of it around `offset` when it is long."""
    if len(text) <= width:
        return repr(text)
    start = max(0, min(offset - width // 2, len(text) - width))
    head = "…" if start > 0 else ""
    tail = "…" if start + width < len(text) else ""
    return f"{head}{text[start : start + width]!r}{tail}"
