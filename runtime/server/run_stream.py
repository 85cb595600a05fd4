"""A workflow run's events: one JSON event per text delta (`delta` for the
answer, `reasoning` for a reasoning model's thinking, which is never part of
the output), then a `done` event with the output, finish reason and usage,
or an `error` event. A run
that fails before its first delta (the model's queue is full, the prompt does
not fit) answers a plain JSON error with its status (503 with Retry-After,
400...), not a stream, as it does for a client that waits for the run."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse

from runtime.server.errors import retry_headers, status_for
from runtime.server.streaming import PING, EventQueue
from runtime.workflow.tasks import Task, TaskStatus, error_body

logger = logging.getLogger(__name__)


class RunEvents(EventQueue):
    """A run's deltas, then its task once it finished (`follow`). Cancelling
    the events cancels the run. `stream`: answer with the events;
    `output_only`: else with the bare output, not the task."""

    def __init__(self, stream: bool, output_only: bool) -> None:
        super().__init__()
        self.stream, self.output_only = stream, output_only

    def follow(self, task: Task) -> None:
        self.run = task

        async def finished() -> Task:
            await task.wait()
            return task

        self.end_with(finished(), name=f"events:{task.id}")

    def cancel(self) -> None:
        super().cancel()
        if not self.run.is_finished:
            self.run.cancel()

    def answer(self, first: Any) -> Response | AsyncIterator[dict[str, Any]]:
        """Once the first event came: a run that failed answers its task with
        the error's status; else its events, its output or its task."""
        task = self.run
        if task.status == TaskStatus.FAILED and task.error is not None:
            status = status_for(task.error)
            return JSONResponse(task.to_json(), status, headers=retry_headers(status))
        if self.stream:
            return run_events(task, first, self)
        if self.output_only and task.status == TaskStatus.COMPLETED:
            return JSONResponse(task.output)
        return JSONResponse(task.to_json())


def final_event(task: Task) -> dict[str, Any]:
    if task.status == TaskStatus.FAILED and task.error is not None:
        return {
            "type": "error",
            "task_id": task.id,
            "workflow_id": task.workflow_id,
            "error": error_body(task.error),
        }
    usage = task.usage
    return {
        "type": "done",
        **task.to_json(),
        "finish_reason": task.finish_reason,
        "usage": {**asdict(usage), "total_tokens": usage.total_tokens},
    }


def delta_event(task: Task, delta: dict[str, Any]) -> dict[str, Any]:
    kind = "reasoning" if delta.get("reasoning") else "delta"
    return {"type": kind, "task_id": task.id, "job_id": delta["job_id"], "text": delta["text"]}


async def run_events(task: Task, first: Any, events: RunEvents) -> AsyncIterator[dict[str, Any]]:
    """The stream from the first event on. Deltas carry their task's id, so a
    client can poll or cancel the run."""
    try:
        event = first
        while event is not task:
            yield PING if event is PING else delta_event(task, event)
            event = await events.next_or_ping()
        yield final_event(task)
    except Exception:  # a bug: end the stream with an error event, not a cut
        logger.exception("stream of task %s failed", task.id)
        yield {
            "type": "error",
            "task_id": task.id,
            "workflow_id": task.workflow_id,
            "error": {
                "type": "internal_error",
                "message": "the server failed on this request (see its log)",
            },
        }
