"""A workflow's input schema, inferred from its bindings, and the check of a
run's input against it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.binding import (
    Binding,
    InputField,
    Omittable,
    compile_template,
    infer_input_fields,
    iter_bindings,
)
from runtime.config.schema import (
    ChatCompletionAction,
    ComposeConfig,
    JobConfig,
    WorkflowAction,
    WorkflowComponent,
    WorkflowConfig,
)
from runtime.config.subworkflows import is_local
from runtime.errors import InputError


def implicit_job(config: ComposeConfig) -> JobConfig:
    """The job a workflow without jobs runs: the only component, whole input."""
    return JobConfig(id="__job__", component=config.job_component(JobConfig()))


def workflow_jobs(config: ComposeConfig, workflow: WorkflowConfig) -> list[JobConfig]:
    return workflow.jobs or [implicit_job(config)]


def _passes_input_through(value: Any) -> bool:
    """A job without `input`, or with `input: ${input}`, hands the workflow's
    input to its component as it is."""
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    template = compile_template(value)
    binding = next(template.bindings(), None) if template.is_whole else None
    return binding is not None and binding.key == "input" and not binding.path


def _input_uses(config: ComposeConfig, workflow: WorkflowConfig) -> Iterator[Binding | Omittable]:
    if workflow.input is not None:
        # Role-based workflows: the workflow's own input mapping is what reads
        # the run's input; the jobs read the mapping.
        yield from iter_bindings(workflow.input)
        return
    for job in workflow_jobs(config, workflow):
        yield from iter_bindings([job.input, job.output, job.repeat_count])
        component_id = config.job_component(job)
        if _passes_input_through(job.input) and component_id is not None:
            component = config.component(component_id)
            yield from _action_uses(config, component.action(job.action))
    yield from iter_bindings(workflow.output)


def _action_uses(config: ComposeConfig, action: Any) -> Iterator[Binding | Omittable]:
    import msgspec

    if isinstance(action, WorkflowAction):
        # Its `input` reads the job's input; `output` reads the sub-workflow's.
        # Without `input`, a workflow of this file gets the job's input as it
        # is, so what that workflow reads is read here (checks refuse cycles).
        if action.input is not None:
            yield from iter_bindings(action.input)
        elif is_local(config, action.workflow):
            yield from _input_uses(config, config.workflow(action.workflow))
        return
    for name, value in msgspec.structs.asdict(action).items():
        if name == "messages" and isinstance(action, ChatCompletionAction):
            yield from _message_uses(value)
        else:
            yield from iter_bindings(value)


# The roles whose message a run leaves out when its content is unset
# (`tasks.chat_completion.chat_messages` drops a message whose content
# rendered to null). Chat templates treat the system turn as optional and put
# the model's own default in its place; leaving out a user or assistant turn
# would change the conversation instead (and some templates refuse turns that
# do not alternate), so those stay required.
OMITTABLE_ROLES = frozenset({"system"})


def _message_uses(messages: Any) -> Iterator[Binding | Omittable]:
    """The bindings of a chat action's `messages`; the one that is the whole
    content of a system message is Omittable (one inside text is not: the
    text around it would still be sent)."""
    if not isinstance(messages, list):
        yield from iter_bindings(messages)
        return
    for message in messages:
        if not _is_omittable(message):
            yield from iter_bindings(message)
            continue
        whole, *inner = compile_template(message["content"]).bindings()
        yield Omittable(whole)
        yield from inner  # in its path or its default: they count as usual
        yield from iter_bindings({k: v for k, v in message.items() if k != "content"})


def _is_omittable(message: Any) -> bool:
    if not isinstance(message, dict) or message.get("role") not in OMITTABLE_ROLES:
        return False
    content = message.get("content")
    return isinstance(content, str) and compile_template(content).is_whole


def workflow_inputs(config: ComposeConfig, workflow: WorkflowConfig) -> list[InputField]:
    return infer_input_fields(_input_uses(config, workflow))


def _normal(name: str) -> str:
    return name.replace("-", "_")


def check_required_inputs(fields: list[InputField], given: Mapping[str, Any]) -> None:
    """Raise InputError naming the first required input that is missing or null.
    `-` and `_` in names are the same (the seed's curl sends `system-prompt`)."""
    present = {_normal(k) for k, v in given.items() if v is not None}
    for field in fields:
        if field.required and _normal(field.name) not in present:
            raise InputError(f"missing required input '{field.name}'", field.name)


@dataclass(frozen=True)
class OutputField:
    name: str
    type: str = "text"


def workflow_outputs(config: ComposeConfig, workflow: WorkflowConfig) -> list[OutputField]:
    """The named fields of a workflow's output, from its (or its last job's)
    output mapping, or that job's workflow component's (that of the workflow
    it runs here, when it has none); an unnamed output gives no fields."""
    mapping = workflow.output
    if mapping is None:
        jobs = workflow_jobs(config, workflow)
        needed = {d for job in jobs for d in job.depends_on}
        terminal = [job for job in jobs if job.id not in needed]
        mapping = terminal[0].output if len(terminal) == 1 else None
        component_id = config.job_component(terminal[0]) if len(terminal) == 1 else None
        component = config.component(component_id) if mapping is None and component_id else None
        if isinstance(component, WorkflowComponent):
            action = component.action(terminal[0].action)
            mapping = action.output
            if mapping is None and is_local(config, action.workflow):
                return workflow_outputs(config, config.workflow(action.workflow))
    if not isinstance(mapping, dict):
        return []
    fields = []
    for name, value in mapping.items():
        template = compile_template(value) if isinstance(value, str) else None
        binding = next(template.bindings(), None) if template and template.is_whole else None
        kind = binding.type.name if binding is not None and binding.type is not None else "text"
        fields.append(OutputField(str(name), kind))
    return fields


def output_streams(output: Any) -> bool:
    """Whether an output mapping reads a value `as stream`."""
    return any(b.type is not None and b.type.name == "stream" for b in iter_bindings(output))


def workflow_streams(config: ComposeConfig, workflow: WorkflowConfig) -> bool:
    """Whether a run of the workflow streams: an action it runs sets
    `streaming` (true or a binding), or an output is `as stream`; a workflow
    component's action, when its `output` is `as stream` or the workflow it
    runs here streams."""
    for job in workflow_jobs(config, workflow):
        component_id = config.job_component(job)
        if component_id is None:
            continue
        component = config.component(component_id)
        action = component.action(job.action)
        if isinstance(component, WorkflowComponent):
            if output_streams(action.output) or _runs_streaming_workflow(config, action.workflow):
                return True
            continue
        if action.streaming is True or isinstance(action.streaming, str):
            return True
    jobs = workflow_jobs(config, workflow)
    return output_streams([workflow.output, *(job.output for job in jobs)])


def _runs_streaming_workflow(config: ComposeConfig, workflow_id: str) -> bool:
    # The loader refuses workflows that run themselves: this recursion ends.
    return is_local(config, workflow_id) and workflow_streams(config, config.workflow(workflow_id))
