"""Load compose files: find, parse with lines, substitute env, merge,
normalise, convert to Structs, check. Collects every problem before failing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.config.checks import Checker
from runtime.config.convert import Converter
from runtime.config.env import build_env, substitute
from runtime.config.files import deep_merge, find_compose_files
from runtime.config.normalize import Entity, Normalizer
from runtime.config.positions import Positions
from runtime.config.schema import (
    Component,
    ComposeConfig,
    ControllerConfig,
    TaskComponent,
    WorkflowComponent,
    WorkflowConfig,
)
from runtime.config.source import Document, load_yaml
from runtime.config.subworkflows import check_workflow_components
from runtime.errors import ConfigError, Location, Problem

TOP_LEVEL_KEYS = ("controller", "component", "components", "workflow", "workflows")


@dataclass
class LoadedConfig:
    config: ComposeConfig
    files: list[Path]
    warnings: list[Problem] = field(default_factory=list)


def load_config(
    files: Sequence[str | Path] = (),
    *,
    env_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> LoadedConfig:
    """Raises ConfigError holding every problem found."""
    paths = find_compose_files(files, cwd)
    variables = build_env(
        Path(env_file) if env_file else None, env, default_env_file=paths[0].parent / ".env"
    )
    problems: list[Problem] = []
    warnings: list[Problem] = []
    positions = Positions()
    merged: Any = None
    documents = [_parse(path, problems) for path in paths]
    if all(document is not None and document.empty for document in documents):
        raise ConfigError(
            Problem(
                "the file is empty: a compose file needs at least one component",
                Location(str(paths[0]), 1),
            )
        )
    for document in documents:
        if document is None:
            continue
        warnings.extend(document.warnings)
        positions.merge(document.positions)
        _substitute_env(document.data, variables, positions, problems)
        merged = document.data if merged is None else deep_merge(merged, document.data, positions)
    if problems:
        raise ConfigError(problems)
    config, checker_warnings = build_config(merged, positions, base_dir=paths[0].parent)
    return LoadedConfig(config, paths, warnings + checker_warnings)


def _parse(path: Path, problems: list[Problem]) -> Document | None:
    try:
        document = load_yaml(path)
    except ConfigError as error:
        problems.extend(error.problems)
        return None
    if not isinstance(document.data, dict):
        problems.append(
            Problem(
                "the file must be a mapping of sections (controller, components, workflows)",
                Location(str(path), 1),
            )
        )
        return None
    return document


def _substitute_env(
    value: Any, env: Mapping[str, str], positions: Positions, problems: list[Problem]
) -> None:
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in list(items):
        if isinstance(item, str) and "${" in item and "env." in item:
            new, missing = substitute(item, env)
            for name in missing:
                file, line = positions.locate(value, key)
                problems.append(
                    Problem(
                        f"environment variable '{name}' is not set and has no default",
                        Location(file, line),
                    )
                )
            value[key] = new
        elif isinstance(item, dict | list):
            _substitute_env(item, env, positions, problems)


def build_config(
    data: dict[str, Any], positions: Positions, base_dir: Path = Path(".")
) -> tuple[ComposeConfig, list[Problem]]:
    """Normalised, converted and checked config, or ConfigError."""
    normalized = Normalizer(positions).run(data)
    problems = list(normalized.problems)
    converter = Converter(positions, problems)
    for key in data:
        if key not in ("controller", "components", "workflows"):
            converter.located(
                f"unknown top-level key '{key}'" + _suggest_top(str(key)), data, key, ""
            )
    controller = ControllerConfig()
    if "controller" in data:
        controller = (
            converter.convert(
                data["controller"], ControllerConfig, "controller", (data, "controller")
            )
            or controller
        )
    components = [(_component(converter, e), e) for e in normalized.components]
    workflows = [
        (converter.convert(e.data, WorkflowConfig, e.display, e.at), e)
        for e in normalized.workflows
    ]
    good_components = [(c, e) for c, e in components if c is not None]
    good_workflows = [(w, e) for w, e in workflows if w is not None]
    config = ComposeConfig(
        controller=controller,
        components=[c for c, _ in good_components],
        workflows=[w for w, _ in good_workflows] or [WorkflowConfig()],
        base_dir=str(base_dir),
    )
    # Check what did convert even when something else did not, so one run of
    # `validate` shows every problem; ids of sections that failed still count
    # as known, so they cause no false "unknown component" reports.
    raw_ids = [e.data.get("id") for e in normalized.components if isinstance(e.data, dict)]
    checker = Checker(positions, known_components=[i for i in raw_ids if isinstance(i, str)])
    checker.controller(config, data.get("controller", {}))
    checker.queue(config, data.get("controller", {}))
    checker.duplicates([e.data for e in normalized.components], "component", "components")
    checker.duplicates([e.data for e in normalized.workflows], "workflow", "workflows")
    raw_components = [(e.data, e.display) for _, e in good_components]
    checker.components(config, raw_components)
    raw_workflow_ids = [e.data.get("id") for e in normalized.workflows if isinstance(e.data, dict)]
    known_workflows = [i for i in raw_workflow_ids if isinstance(i, str)] or [
        w.id for w in config.workflows
    ]
    check_workflow_components(checker, config, raw_components, known_workflows)
    raw_workflows = [(e.data, e.display) for _, e in good_workflows]
    if not normalized.workflows:
        implied: dict[str, Any] = {}
        positions.adopt(implied, data)  # the workflow the file implies: its line 1
        raw_workflows = [(implied, "workflow")]
    if good_workflows or not normalized.workflows:
        checker.workflows(config, raw_workflows)
    for entity in [*normalized.components, *normalized.workflows]:
        checker.bindings(entity.data, *entity.at, entity.display)
    checker.bindings(data.get("controller"), data, "controller", "controller")
    problems += checker.problems
    if problems:
        raise ConfigError(sorted(problems, key=_order))
    return config, checker.warnings


def _order(problem: Problem) -> tuple[str, int]:
    return (problem.location.file or "", problem.location.line or 0)


def _suggest_top(key: str) -> str:
    from runtime.config.convert import suggest

    return suggest(key, TOP_LEVEL_KEYS)


def _component(converter: Converter, entity: Entity) -> Component | None:
    """Convert a component: `type: workflow` is a WorkflowComponent; a model
    component's `task` picks its Struct (and its actions' type)."""
    data, display = entity.data, entity.display
    kind = data.get("type", "model") if isinstance(data, dict) else "model"
    if kind == "workflow":
        return converter.convert(data, WorkflowComponent, display, entity.at)
    if kind != "model":
        converter.located(
            f"component type '{kind}' is not supported here (supported: model, workflow)",
            data,
            "type",
            display,
        )
        return None
    component: Component | None = converter.convert(data, TaskComponent, display, entity.at)  # type: ignore[arg-type]
    return component
