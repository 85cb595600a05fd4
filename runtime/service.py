"""One compose file being served: its models, runner and tasks.

The API, the OpenAI routes and (later) the Web UI all hold the same Service,
so they share one loaded model per file and settings, and one task store.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runtime.config import ComposeConfig
from runtime.config.units import parse_duration
from runtime.engine import ChatMessage, ModelPool
from runtime.errors import ModelComposeError, NotFoundError, RuntimeFailure
from runtime.metrics.service_metrics import ServiceMetrics
from runtime.queue.front import QueueFront
from runtime.queue.metrics import QueueCollector
from runtime.tasks.components import ModelComponents
from runtime.workflow import PreparedRun, RunContext, RunListener, WorkflowRunner
from runtime.workflow.prepared import prepare_remote_run, prepare_run
from runtime.workflow.tasks import Task, TaskStatus, TaskStore

if TYPE_CHECKING:
    from runtime.queue.worker import QueueWorker

logger = logging.getLogger(__name__)


# Why in-flight work ends when the shutdown timeout runs out.
SHUTTING_DOWN = "the server is shutting down"
# How long `stop` waits, past the shutdown timeout, for cancelled runs to wind up.
CANCEL_GRACE = 5.0


class ServiceState(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    FAILED = "failed"


class Service:
    def __init__(
        self,
        config: ComposeConfig,
        pool: ModelPool | None = None,
        status: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.pool = pool or ModelPool()
        # Its collector reads the rest of the service at scrape time only.
        self.metrics = ServiceMetrics(self)
        self.components = ModelComponents(
            config, self.pool, status, on_result=self.metrics.generation_finished
        )
        self.runner = WorkflowRunner(config, self.components)
        controller = config.controller
        self.tasks = TaskStore(controller.max_tasks, parse_duration(controller.task_retention))
        self.shutdown_timeout = parse_duration(controller.shutdown_timeout)
        # Seconds a stream waits for a client that reads nothing (None: for ever).
        self.write_timeout = parse_duration(controller.write_timeout) or None
        limit = controller.max_concurrent_count
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None
        self.state = ServiceState.STARTING
        self.failure: ModelComposeError | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # A front controller (controller.queue): runs of workflows this file
        # does not define go to queue workers.
        self.queue: QueueFront | None = None
        if controller.queue is not None:
            self.queue = QueueFront(controller.queue)
            # `type: workflow` components run other workflows through it too.
            self.runner.remote = self.queue
        # A queue worker (a queue-subscriber adapter), once started.
        self.worker: QueueWorker | None = None
        if controller.queue is not None or controller.subscriber is not None:
            self.metrics.add_collector(QueueCollector(self))

    @property
    def is_ready(self) -> bool:
        return self.state == ServiceState.READY

    async def start(self) -> None:
        """Load every model marked `preload` (the default). When some fail and
        others load, the service is ready but degraded (see `failed_components`);
        when every one fails, it fails with the first one's error."""
        try:
            preloaded = await self.components.preload()
            failures = self.components.failures
            if preloaded and all(component in failures for component in preloaded):
                raise failures[preloaded[0]]
            if self.queue is not None:
                await self.queue.check()
            if self.config.controller.subscriber is not None:
                from runtime.queue.process import start_worker

                self.worker = await start_worker(self)
        except ModelComposeError as error:
            self.state, self.failure = ServiceState.FAILED, error
            raise
        except Exception as error:
            self.state = ServiceState.FAILED
            self.failure = RuntimeFailure(f"cannot start: {error}")
            raise self.failure from error
        self.state = ServiceState.READY

    @property
    def failed_components(self) -> dict[str, ModelComposeError]:
        """Components whose model failed to load while the others serve."""
        return dict(self.components.failures) if self.is_ready else {}

    def prepare(
        self,
        workflow_id: str | None,
        input: Any,
        conversation: list[ChatMessage] | None = None,
    ) -> PreparedRun:
        """Fail before a task exists: unknown workflow, input that is not an
        object or misses a required value. The one lookup and check of a run;
        `conversation` makes it a chat turn (see `PreparedRun`)."""
        try:
            return prepare_run(self.config, workflow_id, input, conversation)
        except NotFoundError:
            if self.queue is None or workflow_id in (None, "__default__"):
                raise
        # Not defined here: a run for the queue's workers.
        return prepare_remote_run(workflow_id, input)

    def start_run(self, run: PreparedRun, listener: RunListener | None = None) -> Task:
        """Create a task for a prepared run and run it in the background;
        returns at once."""
        task = self.tasks.add(Task(run.workflow.id, RunContext(listener=listener)))
        task.runner = asyncio.create_task(self._run(task, run), name=f"task:{task.id}")
        return task

    async def _run(self, task: Task, run: PreparedRun) -> None:
        try:
            async with self._slots if self._slots is not None else contextlib.nullcontext():
                if task.context.cancel.is_cancelled:
                    task.finish(TaskStatus.CANCELLED)
                    return
                task.status = TaskStatus.PROCESSING
                output = await self.runner.execute(run, task.context)
        except asyncio.CancelledError:
            task.finish(TaskStatus.CANCELLED)
        except ModelComposeError as error:
            task.finish(TaskStatus.FAILED, error=error)
        except Exception as error:  # a bug: fail this task, keep serving
            logger.exception("task %s failed", task.id)
            task.finish(TaskStatus.FAILED, error=RuntimeFailure(f"internal error: {error}"))
        else:
            if task.context.cancel.is_cancelled:
                task.finish(TaskStatus.CANCELLED)
            else:
                task.finish(TaskStatus.COMPLETED, output=output)
        finally:  # every way out: each run is counted once, with its final status
            self.metrics.run_finished(task.workflow_id, str(task.status), remote=run.remote)

    def begin_stop(self) -> None:
        """Take no new work; what runs (tasks and /v1 generations) gets the
        shutdown timeout to finish, then is cancelled, so that every stream
        still ends with its final event. Idempotent: the first call starts
        the clock."""
        if self.state in (ServiceState.READY, ServiceState.STARTING):
            self.state = ServiceState.STOPPING
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().call_later(
                self.shutdown_timeout, self.cancel_all, SHUTTING_DOWN
            )

    def cancel_all(self, reason: str) -> None:
        for task in self.tasks.running():
            task.cancel(reason)
        self.components.cancel_generations(reason)

    async def stop(self) -> None:
        """Let running tasks finish within the shutdown timeout (counted from
        `begin_stop`), cancel the rest, then free the models."""
        self.begin_stop()
        self.state = ServiceState.STOPPING
        if self.worker is not None:
            # Its runs finish, or go back to the queue, while the models are still here.
            await self.worker.stop(self.shutdown_timeout)
        running = self.tasks.running()
        if running:
            waiting = [asyncio.ensure_future(t.wait()) for t in running]
            _, pending = await asyncio.wait(waiting, timeout=self.shutdown_timeout + CANCEL_GRACE)
            for future in pending:
                future.cancel()
        self.cancel_all(SHUTTING_DOWN)
        for task in running:
            if task.runner is not None:
                await asyncio.gather(task.runner, return_exceptions=True)
        if self._deadline is not None:
            self._deadline.cancel()
        if self.queue is not None:
            await self.queue.close()
        await self.pool.close()
