"""Server-Sent Events for a workflow run: one JSON event per text delta,
then a `done` event with the output, finish reason and usage, or an `error`
event. A slow reader slows the run (a small bounded queue), and a client
that goes away cancels it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi.responses import StreamingResponse

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


def stream_response(task: Task, listener: StreamListener) -> StreamingResponse:
    return StreamingResponse(
        task_events(task, listener), media_type="text/event-stream", headers=SSE_HEADERS
    )
