"""Server-Sent Events for a workflow run: one JSON event per text delta,
then a `done` event with the output, finish reason and usage, or an `error`
event. A slow reader slows the run (a small bounded queue), and a client
that goes away cancels it. A run that fails before its first delta (the
model's queue is full, the prompt does not fit) is a plain JSON error with
its status (503 with Retry-After, 400...), not a stream."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from runtime.server.errors import retry_headers, status_for
from runtime.workflow.tasks import Task, TaskStatus, error_body

logger = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class StreamListener:
    """Receives a run's deltas; `on_delta` blocks the run while the queue is full."""

    def __init__(self, size: int = 32) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)

    def on_delta(self, job_id: str, text: str, streaming: bool) -> Any:
        return self.queue.put({"job_id": job_id, "text": text})

    def on_result(self, job_id: str, result: Any) -> None:
        pass


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


async def task_events(task: Task, listener: StreamListener) -> AsyncIterator[bytes]:
    finished = asyncio.ensure_future(task.wait())
    getter: asyncio.Future[dict[str, Any]] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(listener.queue.get())
            done, _ = await asyncio.wait({getter, finished}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield delta_event(task, getter.result())
                continue
            getter.cancel()
            while not listener.queue.empty():  # deltas queued before the end
                yield delta_event(task, listener.queue.get_nowait())
            break
        yield sse(final_event(task))
    except Exception:  # a bug: end the stream with an error event, not a cut
        logger.exception("stream of task %s failed", task.id)
        yield sse(
            {
                "type": "error",
                "task_id": task.id,
                "workflow_id": task.workflow_id,
                "error": {
                    "type": "internal_error",
                    "message": "the server failed on this request (see its log)",
                },
            }
        )
    finally:
        for future in (getter, finished):
            if future is not None and not future.done():
                future.cancel()
        # The client went away (or the server is stopping): stop generating.
        if not task.is_finished:
            task.cancel()


def delta_event(task: Task, delta: dict[str, Any]) -> bytes:
    """Deltas carry their task's id, so a client can poll or cancel the run."""
    return sse({"type": "delta", "task_id": task.id, **delta})


async def first_delta(
    task: Task, listener: StreamListener, request: Request
) -> dict[str, Any] | None:
    """The run's first delta; None when the run ends first, or when the
    client hangs up first (then the run is cancelled)."""
    getter = asyncio.ensure_future(listener.queue.get())
    finished = asyncio.ensure_future(task.wait())
    try:
        while True:
            done, _ = await asyncio.wait(
                {getter, finished}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done:
                return getter.result()
            if finished in done:
                return None
            if await request.is_disconnected():
                task.cancel()
                return None
    finally:
        for future in (getter, finished):
            if not future.done():
                future.cancel()


def refusal_status(task: Task) -> int | None:
    """The status of a run that failed before its first delta (503: the
    server had no room for it; 400: a prompt that does not fit the context),
    as a client that waits for the run gets it."""
    if task.status == TaskStatus.FAILED and task.error is not None:
        return status_for(task.error)
    return None


class TaskStream(StreamingResponse):
    """A run's events, answered once the run has sent its first delta or
    ended: a client can then tell "retry later" by the status, as it can for
    a run that does not stream and on /v1, instead of reading a 200 whose
    only event is the refusal. However the response ends, the run does not
    outlive it."""

    def __init__(self, task: Task, listener: StreamListener) -> None:
        super().__init__(self._events(), media_type="text/event-stream", headers=SSE_HEADERS)
        self.task, self.listener = task, listener
        self.first: dict[str, Any] | None = None

    async def _events(self) -> AsyncIterator[bytes]:
        if self.first is not None:
            yield delta_event(self.task, self.first)
        async for event in task_events(self.task, self.listener):
            yield event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            request = Request(scope, receive)
            self.first = await first_delta(self.task, self.listener, request)
            status = refusal_status(self.task) if self.first is None else None
            if status is not None:
                refused = JSONResponse(self.task.to_json(), status, headers=retry_headers(status))
                await refused(scope, receive, send)
            elif self.first is None and not self.task.is_finished:
                await Response(status_code=499)(scope, receive, send)  # the client hung up
            else:
                await super().__call__(scope, receive, send)
        finally:
            if not self.task.is_finished:
                self.task.cancel()


def stream_response(task: Task, listener: StreamListener) -> StreamingResponse:
    return TaskStream(task, listener)
