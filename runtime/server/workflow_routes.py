"""The model-compose API: run workflows, read their schema, poll and cancel
tasks, health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from runtime.errors import InputError
from runtime.server import api_models
from runtime.server.api_models import (
    ErrorResponse,
    Health,
    RunEvent,
    RunRequest,
    WorkflowSchema,
    WorkflowSummary,
)
from runtime.server.deps import ServiceDep, ready
from runtime.server.openapi import error_responses, event_stream
from runtime.server.run_stream import RunEvents
from runtime.server.streaming import respond
from runtime.service import Service
from runtime.workflow.inputs import workflow_inputs, workflow_outputs

router = APIRouter()


# A run answers its task, or with `output_only` its bare output (any JSON), or
# with `Accept: text/event-stream` (or `output_only` on a streaming workflow)
# its events. A run that failed answers its task with the error's status.
RUN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": api_models.Task | Any,
        "description": "The task (the bare output with output_only), or its events.",
        "content": {"text/event-stream": event_stream(RunEvent)},
    },
    **error_responses(ErrorResponse | api_models.Task, 400, 404, 413, 500, 503),
}


@router.get("/health", response_model=Health, responses=error_responses(Health, 503))
async def health(service: ServiceDep) -> JSONResponse:
    if service.is_ready:
        body: dict[str, Any] = {"status": "ok"}
        failed = service.failed_components
        if failed:  # serving, but not every workflow can run: still 200
            first = next(iter(failed.values()))
            message = "; ".join(f"component '{c}' is unavailable: {e}" for c, e in failed.items())
            body = {"status": "degraded", "error": {"type": first.error_type, "message": message}}
        # Unloaded after keep_alive is healthy: the next request loads it again.
        unloaded = service.components.unloaded()
        if unloaded:
            body["models"] = {component: str(state) for component, state in unloaded.items()}
        return JSONResponse(body)
    body = {"status": str(service.state)}
    if service.failure is not None:
        body["error"] = {"type": service.failure.error_type, "message": str(service.failure)}
    return JSONResponse(body, 503, headers={"Retry-After": "1"})


@router.get("/workflows", response_model=list[WorkflowSummary])
async def list_workflows(service: ServiceDep) -> list[dict[str, Any]]:
    config = service.config
    default = config.workflow(None).id
    return [
        {
            "workflow_id": w.id,
            "title": w.title,
            "description": w.description,
            "default": w.id == default,
        }
        for w in config.workflows
    ]


@router.get(
    "/workflows/{workflow_id}/schema",
    response_model=WorkflowSchema,
    response_model_exclude_unset=True,
    responses=error_responses(ErrorResponse, 404),
)
async def workflow_schema(workflow_id: str, service: ServiceDep) -> dict[str, Any]:
    workflow = service.runner.workflow(workflow_id)
    inputs = []
    for field in workflow_inputs(service.config, workflow):
        entry: dict[str, Any] = {
            "name": field.name,
            "type": field.type,
            "default": field.default,
            "required": field.required,
        }
        if field.options:
            entry["options"] = field.options
        inputs.append(entry)
    return {
        "workflow_id": workflow.id,
        "title": workflow.title,
        "description": workflow.description,
        "input": inputs,
        "output": [
            {"name": f.name, "type": f.type} for f in workflow_outputs(service.config, workflow)
        ],
    }


@router.post("/workflows/runs", response_model=None, responses=RUN_RESPONSES)
async def run_workflow(body: RunRequest, request: Request, service: ServiceDep) -> Any:
    return await run(request, service, body.workflow_id, body)


@router.post("/workflows/{workflow_id}/runs", response_model=None, responses=RUN_RESPONSES)
async def run_named_workflow(
    workflow_id: str, body: RunRequest, request: Request, service: ServiceDep
) -> Any:
    runner = service.runner
    if body.workflow_id not in (None, workflow_id) and (
        # `__default__` in the path and the default's own id in the body agree.
        runner.workflow(body.workflow_id).id != runner.workflow(workflow_id).id
    ):
        raise InputError(
            f"the path names workflow '{workflow_id}' but the body names '{body.workflow_id}'"
        )
    return await run(request, service, workflow_id, body)


async def run(request: Request, service: Service, workflow_id: str | None, body: RunRequest) -> Any:
    """Start the run; answer its task at once, or when it ended (a client
    that hangs up first cancels it), or its events."""
    ready(service)
    prepared = service.prepare(workflow_id, body.input)
    stream = "text/event-stream" in request.headers.get("accept", "") or (
        body.output_only and prepared.streams
    )
    events = RunEvents(stream, body.output_only)
    task = service.start_run(prepared, listener=events if stream else None)
    if not stream and not body.wait_for_completion:
        return task.to_json()
    events.follow(task)
    return await respond(events, request, events.answer, service.write_timeout)


# A task answers its state (`output` once completed, `error` once failed).
TASK: dict[str, Any] = {
    "response_model": api_models.Task,
    "response_model_exclude_unset": True,
    "responses": error_responses(ErrorResponse, 404),
}


@router.get("/tasks/{task_id}", **TASK)
async def get_task(task_id: str, service: ServiceDep) -> dict[str, Any]:
    return service.tasks.get(task_id).to_json()


@router.post("/tasks/{task_id}/cancel", **TASK)
async def cancel_task(task_id: str, service: ServiceDep) -> dict[str, Any]:
    task = service.tasks.get(task_id)
    if not task.is_finished:
        task.cancel()
        await task.wait()
    return task.to_json()
