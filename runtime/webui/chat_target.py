"""Which workflows get a chat view, and what a chat turn sends.

A workflow is a chat workflow when it runs one chat-completion action once.
A chat turn is a run of that workflow (through the runner, like any other
run) whose action answers the whole conversation instead of its own
messages, and takes everything else (sampling, max tokens, stop sequences,
the default system prompt) from the action, rendered in the runner's own
scope for the form's current input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.binding import render
from runtime.binding.casts import to_text
from runtime.config.schema import ChatCompletionAction, ComposeConfig, JobConfig, WorkflowConfig
from runtime.engine.types import CancelToken, ChatMessage, GenerationRequest
from runtime.errors import ModelComposeError
from runtime.tasks.common import action_scope, generation_request, render_settings
from runtime.workflow.inputs import workflow_jobs
from runtime.workflow.prepared import job_input, run_scope


@dataclass(frozen=True)
class ChatTarget:
    workflow: WorkflowConfig
    job: JobConfig
    component_id: str
    action: ChatCompletionAction


def chat_target(config: ComposeConfig, workflow: WorkflowConfig) -> ChatTarget | None:
    jobs = workflow_jobs(config, workflow)
    if len(jobs) != 1 or jobs[0].repeat_count is not None or not config.components:
        return None
    job = jobs[0]
    component_id = config.job_component(job)
    if component_id is None:
        return None
    try:
        action = config.component(component_id).action(job.action)
    except (KeyError, IndexError):
        return None
    if not isinstance(action, ChatCompletionAction):
        return None
    return ChatTarget(workflow, job, component_id, action)


def _action_scope(target: ChatTarget, input: dict[str, Any]) -> dict[str, Any]:
    """The scope the action renders in for `input`: the runner's own."""
    return action_scope(job_input(target.job, run_scope(target.workflow, input)))


def default_system_prompt(target: ChatTarget, input: dict[str, Any]) -> str:
    """The action's system message for `input` (typically the inputs'
    defaults): a constant, a default such as `${input.system_prompt | "Be
    brief."}`, or a role-based workflow's fixed prompt. Empty when there is
    none, or when it cannot be rendered without more input."""
    if not isinstance(target.action.messages, list):
        return ""
    scope = _action_scope_or_none(target, input)
    if scope is None:
        return ""
    for message in target.action.messages:
        if isinstance(message, dict) and message.get("role") == "system":
            try:
                return to_text(render(message.get("content"), scope))
            except ModelComposeError:
                return ""
    return ""


def _action_scope_or_none(target: ChatTarget, input: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return _action_scope(target, input)
    except ModelComposeError:
        return None


def chat_request(
    target: ChatTarget, messages: list[ChatMessage], input: dict[str, Any]
) -> GenerationRequest:
    """The request one chat turn makes, for checking a turn before it is
    shown. Raises InputError when the action's settings cannot be rendered
    from `input` (say, a temperature that is not a number). The turn's run
    builds its own, with the run's cancel token; this one is never submitted."""
    settings = render_settings(target.action, _action_scope(target, input))
    return generation_request(settings, CancelToken(), messages=messages)
