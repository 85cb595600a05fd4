"""What the model-compose API answers, as pydantic models: they are its
OpenAPI document (routes name them as response models), and the routes that
return plain dicts are validated against them on the way out."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.workflow.tasks import TaskStatus


class Strict(BaseModel):
    """A documented shape: a field this server does not document is a bug."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Strict):
    type: str = Field(description="what went wrong, e.g. invalid_request, not_found, unavailable")
    message: str = Field(description="what was wrong, in words, naming the field or the thing")
    prompt_tokens: int | None = Field(None, description="context_length_exceeded only")
    context_length: int | None = Field(None, description="context_length_exceeded only")


class ErrorResponse(Strict):
    """Every error of the model-compose API."""

    error: ErrorDetail


class Health(Strict):
    status: str = Field(description="ok, or while not ready: starting, stopping or failed")
    error: ErrorDetail | None = Field(None, description="why the server failed to start")
    models: dict[str, Literal["unloaded", "loading"]] | None = Field(
        None,
        description=(
            "components whose model was unloaded after its keep_alive (the next request "
            "loads it again), or is loading again; absent when every model is loaded"
        ),
    )


class WorkflowSummary(Strict):
    workflow_id: str
    title: str | None
    description: str | None
    default: bool


class InputField(Strict):
    name: str
    type: str = Field(description="text, number, integer, boolean, json, list, select...")
    default: Any
    required: bool = Field(
        description=(
            "false when a run may leave the input out: every binding that reads it has a "
            "default, or it fills the whole content of a system message (which is then "
            "left out, and the model's own default system prompt applies)"
        )
    )
    options: list[str] | None = Field(None, description="the choices of a select")


class OutputField(Strict):
    name: str
    type: str


class WorkflowSchema(Strict):
    workflow_id: str
    title: str | None
    description: str | None
    input: list[InputField]
    output: list[OutputField]


class Task(Strict):
    """A workflow run: `output` once completed, `error` once failed."""

    task_id: str
    status: TaskStatus
    workflow_id: str
    output: Any = Field(None, description="the workflow's output (completed runs only)")
    error: ErrorDetail | None = Field(None, description="why the run failed (failed runs only)")


class RunRequest(Strict):
    workflow_id: str | None = None
    input: dict[str, Any] = Field(
        default_factory=dict,
        description="the workflow's input: see GET /workflows/{workflow_id}/schema",
    )
    wait_for_completion: bool = True
    output_only: bool = False

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # `"output_only": 0` is a mistake to report, not a false to guess
        json_schema_extra={"examples": [{"input": {"prompt": "Once upon a time"}}]},
    )


# -- the events of a streamed run (text/event-stream, one JSON object per event) -------


class RunUsage(Strict):
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int = Field(description="of the completion tokens, the reasoning blocks'")
    total_tokens: int


class DeltaEvent(Strict):
    """A piece of the answer."""

    type: Literal["delta"]
    task_id: str
    job_id: str
    text: str


class ReasoningEvent(Strict):
    """A piece of a reasoning model's thinking: never part of the output."""

    type: Literal["reasoning"]
    task_id: str
    job_id: str
    text: str


class DoneEvent(Task):
    """The last event of a run that did not fail: the task, then how it ended."""

    type: Literal["done"]
    finish_reason: str | None = Field(description="stop, length or cancelled")
    usage: RunUsage


class ErrorEvent(Strict):
    """The last event of a run that failed."""

    type: Literal["error"]
    task_id: str
    workflow_id: str
    error: ErrorDetail


RunEvent = Annotated[
    DeltaEvent | ReasoningEvent | DoneEvent | ErrorEvent, Field(discriminator="type")
]
