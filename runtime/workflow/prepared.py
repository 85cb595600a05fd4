"""A run ready to start: its workflow looked up and its input checked, once.

The service builds one per run; the HTTP route (to choose JSON or events),
the task store (the task's workflow id) and the runner all read the same one,
so no layer looks the workflow up or checks the input again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.binding import render
from runtime.config.schema import ComposeConfig, JobConfig, WorkflowConfig
from runtime.engine.types import ChatMessage
from runtime.errors import InputError, NotFoundError
from runtime.workflow.inputs import check_required_inputs, workflow_inputs, workflow_streams


@dataclass(frozen=True)
class PreparedRun:
    workflow: WorkflowConfig
    input: dict[str, Any]
    # Whether the run streams (an action sets `streaming`, or an output is `as stream`).
    streams: bool
    # A chat turn (the Web UI's chat view): the whole conversation, which the
    # run's chat-completion action answers instead of its rendered `messages`.
    conversation: list[ChatMessage] | None = None
    # A workflow this file does not define, run by a queue worker (runtime.queue).
    remote: bool = False


def find_workflow(config: ComposeConfig, workflow_id: str | None) -> WorkflowConfig:
    """The named workflow (None/`__default__`: the default one), or NotFoundError."""
    try:
        return config.workflow(workflow_id)
    except KeyError:
        known = ", ".join(f"'{w.id}'" for w in config.workflows)
        raise NotFoundError(f"unknown workflow '{workflow_id}' (known: {known})") from None


def prepare_run(
    config: ComposeConfig,
    workflow_id: str | None,
    input: Any,
    conversation: list[ChatMessage] | None = None,
) -> PreparedRun:
    """Look the workflow up and check the input against its schema: unknown
    workflow (NotFoundError), input not an object or missing a required
    value (InputError). A chat turn's required inputs are not checked: the
    conversation stands in for the messages that read them (an input that
    something else still needs fails when it renders)."""
    workflow = find_workflow(config, workflow_id)
    input = input_object(input)
    if conversation is None:
        check_required_inputs(workflow_inputs(config, workflow), input)
    streams = workflow_streams(config, workflow)
    return PreparedRun(workflow, input, streams, conversation)


def prepare_remote_run(workflow_id: str, input: Any) -> PreparedRun:
    """A run of a workflow this file does not define, for a queue worker
    (which looks it up and checks the rest of the input itself)."""
    return PreparedRun(WorkflowConfig(id=workflow_id), input_object(input), False, remote=True)


def input_object(input: Any) -> dict[str, Any]:
    """A run's input: a JSON object (nothing: an empty one), else InputError."""
    if input is None:
        return {}
    if not isinstance(input, Mapping):
        raise InputError(f"the input must be a JSON object, got {type(input).__name__}")
    return dict(input)


def run_scope(workflow: WorkflowConfig, input: Mapping[str, Any]) -> dict[str, Any]:
    """What a run's bindings read before any job ran: the input (through the
    workflow's own input mapping, for role-based workflows) and env."""
    scope: dict[str, Any] = {"input": dict(input), "env": dict(os.environ), "jobs": {}}
    if workflow.input is not None:
        scope["input"] = render(workflow.input, scope)
    return scope


def job_input(job: JobConfig, scope: dict[str, Any]) -> Any:
    """A job's rendered input: its `input`, or the workflow's input as it is."""
    return scope["input"] if job.input is None else render(job.input, scope)
