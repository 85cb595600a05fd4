"""The front controller's side of the queue (`controller.queue`): a run of a
workflow this file does not define is queued in Redis for a worker, and its
result (or its streamed text) read back.

Where model-compose's front is weak, ours: refuses a run when the queue is
already `max_queue` deep (HTTP 503 with Retry-After); takes a run it gives
up on (cancelled, timed out) back out of the queue, or, when a worker has it,
tells the worker (a channel message, and a key for a worker that takes it
later); answers a worker's failure and cancellation as such, not as an empty
success; and turns a lost Redis connection into an error at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from runtime.config.schema import QueueConfig
from runtime.config.units import parse_duration
from runtime.engine.types import FinishReason, GenerationResult, Usage
from runtime.errors import (
    InputError,
    ModelComposeError,
    NotFoundError,
    PromptTooLongError,
    QueueFullError,
    QueueUnavailableError,
    RuntimeFailure,
)
from runtime.queue.connection import connect, where
from runtime.queue.results import Results, Subscription
from runtime.queue.watch import watch_depths
from runtime.queue.wire import (
    CANCELLED,
    COMPLETED,
    FAILED,
    STREAMING,
    QueueKeys,
    chunk_text,
    dispatch_message,
    new_id,
    parse_result,
)
from runtime.workflow.context import RunContext
from runtime.workflow.runner import ActionResult

logger = logging.getLogger(__name__)

# How long a cancel stays visible to a worker that takes the run later.
CANCEL_TTL = 3600
# How long one wait for a message blocks before the deadline is looked at.
POLL = 1.0
# Errors a worker reports (its `error_type`) that are the caller's, not the worker's.
USER_ERRORS: dict[str, type[ModelComposeError]] = {
    cls.error_type: cls for cls in (InputError, NotFoundError, PromptTooLongError)
}


class QueueFront:
    """Runs workflows on workers through Redis (see runtime.queue.wire)."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.keys = QueueKeys(config.name)
        self.redis = connect(config)
        self.results = Results(self.redis)
        self.where = where(config)
        self.timeout = parse_duration(config.timeout) or None
        # Runs this front has dispatched and not yet seen answered.
        self.pending = 0
        # The queues this front has used, and their depth when last seen (/metrics).
        self.depths: dict[str, int] = {}
        self.watching: asyncio.Task[None] | None = None

    def has(self, workflow_id: str) -> bool:
        """Any workflow: whether a worker serves it is known only when one takes it."""
        return True

    async def check(self) -> None:
        """At start: a Redis that cannot be reached is said at once (runs
        would fail with queue_unavailable), though the front still serves."""
        try:
            await asyncio.wait_for(self.redis.ping(), 5)
        except (RedisError, TimeoutError) as error:
            logger.warning(
                "cannot reach Redis at %s (%s): runs for queue workers will fail until it answers",
                self.where,
                error or "no answer in 5s",
            )

    async def close(self) -> None:
        if self.watching is not None:
            self.watching.cancel()
            await asyncio.gather(self.watching, return_exceptions=True)
        await self.results.close()
        await self.redis.aclose()

    def watch(self) -> None:
        """Keep `depths` current for /metrics (from the first run on)."""
        if self.watching is None:
            self.watching = asyncio.create_task(
                watch_depths(self.redis, self.keys, self.depths), name="queue:depths"
            )

    async def run(
        self,
        workflow_id: str,
        input: dict[str, Any],
        context: RunContext,
        job_id: str,
        streams: bool = False,
    ) -> ActionResult:
        """Queue the run and wait for its result; its streamed text goes to
        `context` as it comes (whether the caller shows it is the listener's
        business: `streams` changes nothing on the wire)."""
        deadline = time.monotonic() + self.timeout if self.timeout else None
        queue = self.keys.queue(workflow_id)
        task_id, run_id = new_id(), new_id()
        message = dispatch_message(task_id, run_id, input)
        try:
            depth = await self.redis.llen(queue)
            self.depths[workflow_id] = depth
            self.watch()
            if depth >= self.config.max_queue:
                raise QueueFullError(
                    f"the queue for workflow '{workflow_id}' already holds {depth} runs "
                    f"(max_queue {self.config.max_queue}); retry later"
                )
            # Listen before queueing: a worker may answer at once.
            subscription = await self.results.subscribe(self.keys.result(workflow_id, run_id))
            try:
                await self.redis.lpush(queue, message)
                self.pending += 1
                try:
                    result = await self._result(subscription, workflow_id, run_id, deadline)
                    if result.get("status") == STREAMING:
                        result = await self._stream(
                            result, workflow_id, run_id, context, job_id, deadline
                        )
                except BaseException:
                    await asyncio.shield(self._withdraw(queue, message, task_id))
                    raise
                finally:
                    self.pending -= 1
            finally:
                await self.results.unsubscribe(subscription)
        except RedisError as error:
            raise QueueUnavailableError(
                f"Redis at {self.where} cannot be reached or dropped the connection, "
                f"running workflow '{workflow_id}' (run {run_id}): {error}"
            ) from None
        answer = _answer(result, workflow_id)
        _report_usage(result, answer, context, job_id)
        return answer

    async def _result(
        self, subscription: Subscription, workflow_id: str, run_id: str, deadline: float | None
    ) -> dict[str, Any]:
        while True:
            wait = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if wait <= 0:
                raise RuntimeFailure(
                    f"no result for workflow '{workflow_id}' (run {run_id}) within "
                    f"{self.timeout:g}s (controller.queue.timeout): is a worker serving it?"
                )
            message = await subscription.next(wait)
            if message is not None:
                return parse_result(message)

    async def _stream(
        self,
        started: dict[str, Any],
        workflow_id: str,
        run_id: str,
        context: RunContext,
        job_id: str,
        deadline: float | None,
    ) -> dict[str, Any]:
        """Pass a streamed run's text on as it comes; its result: ours SET
        the whole output before the end, model-compose's only stream text."""
        key = started.get("stream_key") or self.keys.stream(workflow_id, run_id)
        last: bytes | str = b"0-0"
        text: list[str] = []
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"workflow '{workflow_id}' (run {run_id}) streamed past "
                    f"{self.timeout:g}s (controller.queue.timeout)"
                )
            reply = await self.redis.xread({key: last}, count=64, block=int(POLL * 1000))
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    event = fields.get(b"event")
                    if event == b"chunk":
                        chunk = chunk_text(fields)
                        reasoning = fields.get(b"reasoning") == b"1"
                        if not reasoning:
                            text.append(chunk)
                        await context.delta(job_id, chunk, True, reasoning=reasoning)
                    elif event == b"error":
                        data = fields.get(b"data", b"").decode() or "unknown streaming error"
                        return {"status": FAILED, "error": data}
                    elif event == b"done":
                        stored = await self.redis.get(self.keys.result(workflow_id, run_id))
                        result = parse_result(stored) if stored else {}
                        if result.get("status") == COMPLETED:
                            return result
                        return {"status": COMPLETED, "output": "".join(text)}

    async def _withdraw(self, queue: str, message: bytes, task_id: str) -> None:
        """A run given up on: out of the queue if no worker took it yet, else
        cancelled on its worker (now, or when a worker takes it again)."""
        try:
            if await self.redis.lrem(queue, 1, message):
                return
            await self.redis.set(self.keys.cancelled(task_id), b"1", ex=CANCEL_TTL)
            await self.redis.publish(self.keys.cancel, json.dumps({"task_id": task_id}))
        except RedisError as error:
            logger.warning("could not withdraw task %s from the queue: %s", task_id, error)


def _report_usage(
    result: dict[str, Any], answer: ActionResult, context: RunContext, job_id: str
) -> None:
    """Our workers send the run's token counts: the front's run reports them
    (its usage, /metrics) as if it had generated the answer itself."""
    usage = result.get("usage")
    if not isinstance(usage, dict):
        return
    counts = {
        f.name: usage[f.name]
        for f in dataclasses.fields(Usage)
        if isinstance(usage.get(f.name), int)
    }
    try:
        reason = FinishReason(result.get("finish_reason") or FinishReason.STOP)
    except ValueError:
        reason = FinishReason.STOP
    text = answer.output if isinstance(answer.output, str) else ""
    context.finished(job_id, GenerationResult(text, reason, Usage(**counts)))


def _answer(result: dict[str, Any], workflow_id: str) -> ActionResult:
    status = result.get("status", FAILED)
    worker = result.get("worker_id") or "?"
    if status == COMPLETED:
        return ActionResult(result.get("output"), result.get("reasoning"))
    if status == CANCELLED:
        raise RuntimeFailure(f"workflow '{workflow_id}' was cancelled on worker {worker}")
    error = result.get("error") or "unknown error from the worker"
    kind = USER_ERRORS.get(str(result.get("error_type")))
    if kind is not None:
        raise kind(str(error))
    raise RuntimeFailure(f"workflow '{workflow_id}' failed on worker {worker}: {error}")
