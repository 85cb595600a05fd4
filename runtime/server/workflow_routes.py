"""The model-compose API: run workflows, read their schema, poll and cancel
tasks, health."""

from __future__ import annotations

import asyncio
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
from runtime.server.errors import ServiceUnavailable, retry_headers, status_for
from runtime.server.openapi import error_responses, event_stream
from runtime.server.sse import StreamListener, stream_response
from runtime.service import Service, ServiceState
from runtime.workflow.inputs import workflow_inputs, workflow_outputs
from runtime.workflow.tasks import Task, TaskStatus

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


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def ready_service(request: Request) -> Service:
    service = service_of(request)
    if service.state == ServiceState.STARTING:
        raise ServiceUnavailable("the server is still loading its models; retry shortly")
    if service.state == ServiceState.FAILED:
        raise ServiceUnavailable(f"the server failed to start: {service.failure}")
    if service.state != ServiceState.READY:
        raise ServiceUnavailable("the server is shutting down")
    return service


@router.get("/health", response_model=Health, responses=error_responses(Health, 503))
async def health(request: Request) -> JSONResponse:
    service = service_of(request)
    if service.is_ready:
        failed = service.failed_components
        if failed:  # serving, but not every workflow can run: still 200
            first = next(iter(failed.values()))
            message = "; ".join(f"component '{c}' is unavailable: {e}" for c, e in failed.items())
            return JSONResponse(
                {"status": "degraded", "error": {"type": first.error_type, "message": message}}
            )
        return JSONResponse({"status": "ok"})
    body: dict[str, Any] = {"status": str(service.state)}
    if service.failure is not None:
        body["error"] = {"type": service.failure.error_type, "message": str(service.failure)}
    return JSONResponse(body, 503, headers={"Retry-After": "1"})


@router.get("/workflows", response_model=list[WorkflowSummary])
async def list_workflows(request: Request) -> list[dict[str, Any]]:
    config = service_of(request).config
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
async def workflow_schema(workflow_id: str, request: Request) -> dict[str, Any]:
    service = service_of(request)
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
async def run_workflow(body: RunRequest, request: Request) -> Any:
    return await _run(request, body.workflow_id, body)


@router.post("/workflows/{workflow_id}/runs", response_model=None, responses=RUN_RESPONSES)
async def run_named_workflow(workflow_id: str, body: RunRequest, request: Request) -> Any:
    runner = service_of(request).runner
    if body.workflow_id not in (None, workflow_id) and (
        # `__default__` in the path and the default's own id in the body agree.
        runner.workflow(body.workflow_id).id != runner.workflow(workflow_id).id
    ):
        raise InputError(
            f"the path names workflow '{workflow_id}' but the body names '{body.workflow_id}'"
        )
    return await _run(request, workflow_id, body)


async def _run(request: Request, workflow_id: str | None, body: RunRequest) -> Any:
    service = ready_service(request)
    run = service.prepare(workflow_id, body.input)
    wants_events = "text/event-stream" in request.headers.get("accept", "")
    if wants_events or (body.output_only and run.streams):
        listener = StreamListener()
        return stream_response(service.start_run(run, listener=listener), listener)
    task = service.start_run(run)
    if not body.wait_for_completion:
        return task.to_json()
    await _wait_unless_disconnected(task, request)
    if task.status == TaskStatus.FAILED and task.error is not None:
        status = status_for(task.error)
        return JSONResponse(task.to_json(), status, headers=retry_headers(status))
    if body.output_only and task.status == TaskStatus.COMPLETED:
        return JSONResponse(task.output)
    return task.to_json()


async def _wait_unless_disconnected(task: Task, request: Request) -> None:
    """A client that hangs up while waiting cancels its run."""
    finished = asyncio.ensure_future(task.wait())
    while not finished.done():
        await asyncio.wait({finished}, timeout=0.5)
        if not finished.done() and await request.is_disconnected():
            task.cancel()
            await finished


@router.get(
    "/tasks/{task_id}",
    response_model=api_models.Task,
    response_model_exclude_unset=True,
    responses=error_responses(ErrorResponse, 404),
)
async def get_task(task_id: str, request: Request) -> dict[str, Any]:
    return service_of(request).tasks.get(task_id).to_json()


@router.post(
    "/tasks/{task_id}/cancel",
    response_model=api_models.Task,
    response_model_exclude_unset=True,
    responses=error_responses(ErrorResponse, 404),
)
async def cancel_task(task_id: str, request: Request) -> dict[str, Any]:
    task = service_of(request).tasks.get(task_id)
    if not task.is_finished:
        task.cancel()
        await task.wait()
    return task.to_json()
