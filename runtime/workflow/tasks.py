"""Workflow runs as tasks: their status, output or error, and a bounded store
from which finished tasks expire."""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.engine.types import FinishReason, Usage
from runtime.errors import ModelComposeError, NotFoundError, RuntimeFailure
from runtime.workflow.context import RunContext


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TooManyTasksError(RuntimeFailure):
    """Every slot of the task store holds a task that is still running."""

    error_type = "server_busy"


@dataclass
class Task:
    workflow_id: str
    context: RunContext = field(default_factory=RunContext)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: TaskStatus = TaskStatus.PENDING
    output: Any = None
    error: ModelComposeError | None = None
    finished_at: float | None = None
    runner: asyncio.Task[Any] | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    async def wait(self) -> None:
        await self._done.wait()

    def finish(
        self,
        status: TaskStatus,
        output: Any = None,
        error: ModelComposeError | None = None,
        now: float | None = None,
    ) -> None:
        if self.is_finished:
            return
        self.status, self.output, self.error = status, output, error
        self.finished_at = time.monotonic() if now is None else now
        self._done.set()

    def cancel(self, reason: str | None = None) -> None:
        """Ask the run to stop; the runner marks the task cancelled."""
        self.context.cancel.cancel(reason)
        # Once: a second cancel would land in the runner's own clean-up (the
        # streaming edge may ask again as its response closes).
        if self.runner is not None and not self.runner.done() and not self.runner.cancelling():
            self.runner.cancel()

    @property
    def usage(self) -> Usage:
        return Usage.of(r.usage for r in self.context.results)

    @property
    def finish_reason(self) -> str | None:
        if self.status == TaskStatus.CANCELLED:
            return FinishReason.CANCELLED
        if not self.context.results:
            return None
        # One length-limited generation makes the whole answer cut short.
        reasons = [r.finish_reason for r in self.context.results]
        return FinishReason.LENGTH if FinishReason.LENGTH in reasons else reasons[-1]

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "task_id": self.id,
            "status": str(self.status),
            "workflow_id": self.workflow_id,
        }
        if self.status == TaskStatus.COMPLETED:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = error_body(self.error)
        return body


def error_body(error: ModelComposeError) -> dict[str, str]:
    return {"type": error.error_type, "message": str(error)}


class TaskStore:
    """Tasks by id. Finished tasks expire after `retention` seconds; when
    `max_tasks` are held, the oldest finished one makes room."""

    def __init__(
        self,
        max_tasks: int = 1000,
        retention: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_tasks = max_tasks
        self.retention = retention
        self.clock = clock
        self._tasks: OrderedDict[str, Task] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, task: Task) -> Task:
        self.expire()
        if len(self._tasks) >= self.max_tasks:
            oldest = next((t for t in self._tasks.values() if t.is_finished), None)
            if oldest is None:
                raise TooManyTasksError(
                    f"all {len(self._tasks)} task slots hold running tasks "
                    "(controller.max_tasks); retry later"
                )
            del self._tasks[oldest.id]
        self._tasks[task.id] = task
        return task

    def get(self, task_id: str) -> Task:
        self.expire()
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFoundError(
                f"unknown task '{task_id}' (finished tasks are kept for {self.retention:g} seconds)"
            )
        return task

    def running(self) -> list[Task]:
        return [t for t in self._tasks.values() if not t.is_finished]

    def expire(self) -> None:
        now = self.clock()
        for task in list(self._tasks.values()):
            if task.finished_at is not None and now - task.finished_at > self.retention:
                del self._tasks[task.id]
