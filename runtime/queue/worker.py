"""A queue worker (a `queue-subscriber` adapter): takes runs of its workflows
from Redis, runs them on this process's models, and answers in Redis.

model-compose's workers BRPOP a run, so one whose worker dies is lost and
its front waits for ever. Ours move each run they take (BLMOVE) into a list
of their own and hold a lease key they renew; every worker looks for workers
whose lease lapsed (`visibility_timeout`) and puts their runs back in the
queue, each at most `max_attempts` times, then answers it as failed. A run
whose text was already streaming is failed rather than run again (its reader
has half an answer). A worker takes no more runs than its slots, and a run
cancelled by the front stops on its worker and frees its slot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import socket
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from runtime.config.schema import ComposeConfig, QueueSubscriberAdapter
from runtime.config.units import parse_duration
from runtime.errors import ModelComposeError
from runtime.queue.connection import connect, where
from runtime.queue.scripts import Scripts
from runtime.queue.stream_writer import StreamWriter
from runtime.queue.watch import watch_depths
from runtime.queue.wire import (
    CANCELLED,
    COMPLETED,
    FAILED,
    STREAMING,
    Dispatch,
    MalformedMessage,
    QueueKeys,
    blob_markers,
    new_id,
    parse_dispatch,
    requeued,
    result_message,
)
from runtime.tasks.components import DEFAULT_PARALLEL
from runtime.workflow.tasks import Task, TaskStatus

if TYPE_CHECKING:
    from runtime.service import Service

logger = logging.getLogger(__name__)

# Why a run ends when its worker stops (it goes back to the queue).
STOPPING = "the queue worker is stopping"
# How long to wait before trying Redis again after an error (doubling, at most).
BACKOFF = (0.2, 5.0)


def default_slots(config: ComposeConfig) -> int:
    """Runs taken at once: the most any of the file's models decodes together."""
    return max((c.parallel or DEFAULT_PARALLEL for c in config.model_components), default=1)


@dataclass
class Running:
    workflow_id: str
    dispatch: Dispatch
    task: Task | None = None
    # Its text is on the stream: it cannot be run again from the start.
    streamed: bool = False
    cancelled: bool = False


class QueueWorker:
    def __init__(self, service: Service, adapter: QueueSubscriberAdapter) -> None:
        self.service = service
        self.adapter = adapter
        self.keys = QueueKeys(adapter.name)
        self.redis = connect(adapter)
        self.scripts = Scripts(self.redis)
        self.where = where(adapter)
        self.worker_id = adapter.worker_id or f"{socket.gethostname()}-{os.getpid()}-{new_id()[:6]}"
        config = service.config
        self.workflows = list(adapter.workflows or [w.id for w in config.workflows])
        # The workflows whose taken lists this worker may hold (its own and
        # those it took over from a dead worker): a worker reaping it reads them.
        self.holds = set(self.workflows)
        self.slots = adapter.max_concurrent_count or default_slots(config)
        self.visibility = parse_duration(adapter.visibility_timeout)
        self.result_ttl = int(parse_duration(adapter.result_ttl))
        self.pop_timeout = parse_duration(adapter.pop_timeout)
        self.active: dict[str, Running] = {}
        self.stopping = False
        self._slots: list[asyncio.Task[None]] = []
        self._idle: set[asyncio.Task[None]] = set()
        self._helpers: list[asyncio.Task[None]] = []
        self._turn = 0
        # Counts by outcome, and its queues' depths, for /metrics.
        self.counts: Counter[str] = Counter()
        self.depths: dict[str, int] = dict.fromkeys(self.workflows, 0)

    @property
    def busy(self) -> int:
        return len(self.active)

    # -- life ----------------------------------------------------------------

    async def start(self) -> None:
        """Register (a Redis that cannot be reached is an error now, said
        clearly), then take runs."""
        await self._register()
        self._helpers = [
            asyncio.create_task(
                watch_depths(self.redis, self.keys, self.depths), name="queue:depths"
            ),
            asyncio.create_task(self._heartbeat(), name="queue:heartbeat"),
            asyncio.create_task(self._reaper(), name="queue:reaper"),
            asyncio.create_task(self._cancels(), name="queue:cancels"),
        ]
        self._slots = [
            asyncio.create_task(self._slot(), name=f"queue:slot{i}") for i in range(self.slots)
        ]

    async def stop(self, timeout: float) -> None:
        """Take nothing more; let running runs finish within `timeout`, then
        put what still runs back in the queue for another worker."""
        self.stopping = True
        for slot in list(self._idle):
            slot.cancel()
        _, late = await asyncio.wait(self._slots, timeout=timeout) if self._slots else ((), ())
        for running in list(self.active.values()):
            if running.task is not None:
                running.task.cancel(STOPPING)
        if late:
            await asyncio.wait(late, timeout=10)
        for task in [*self._slots, *self._helpers]:
            task.cancel()
        await asyncio.gather(*self._slots, *self._helpers, return_exceptions=True)
        try:
            await self._release()
        except RedisError as error:
            logger.warning("could not give runs back to Redis at %s: %s", self.where, error)
        await self.redis.aclose()

    async def _register(self) -> None:
        await self.redis.set(self.keys.lease(self.worker_id), b"1", px=self._lease_ms())
        await self.redis.hset(self.keys.workers, self.worker_id, json.dumps(sorted(self.holds)))  # type: ignore[misc]

    def _lease_ms(self) -> int:
        return max(int(self.visibility * 1000), 100)

    async def _release(self) -> None:
        """On a clean stop: runs taken but not answered go back (as they
        came), and the worker's records go."""
        for workflow_id in self.holds:
            taken = self.keys.taken(self.worker_id, workflow_id)
            while (
                raw := await self.redis.lmove(taken, self.keys.queue(workflow_id), "LEFT", "RIGHT")
            ) is not None:
                logger.info("gave back run %r", raw[:80])
        await self.redis.hdel(self.keys.workers, self.worker_id)  # type: ignore[misc]
        await self.redis.delete(self.keys.lease(self.worker_id))

    # -- taking runs ---------------------------------------------------------

    async def _slot(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        pause = BACKOFF[0]
        while not self.stopping:
            self._idle.add(me)
            try:
                taken = await self._take()
            except RedisError as error:
                logger.warning(
                    "queue: Redis at %s: %s (retrying in %.1fs)", self.where, error, pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF[1])
                continue
            finally:
                self._idle.discard(me)
            pause = BACKOFF[0]
            if taken is not None:
                await self._handle(*taken)

    async def _take(self) -> tuple[str, bytes] | None:
        """The oldest run of one of the workflows, moved into this worker's
        list in the same step (BLMOVE), so that it is never only in flight."""
        order = self.workflows[self._turn :] + self.workflows[: self._turn]
        self._turn = (self._turn + 1) % len(self.workflows)
        if len(order) > 1:
            for workflow_id in order:
                raw = await self.redis.lmove(
                    self.keys.queue(workflow_id),
                    self.keys.taken(self.worker_id, workflow_id),
                    "RIGHT",
                    "LEFT",
                )
                if raw is not None:
                    return workflow_id, raw
        # Block on one queue at a time (BLMOVE takes one source): with several
        # workflows each wait is a share of pop_timeout.
        workflow_id = order[0]
        raw = await self.redis.blmove(
            self.keys.queue(workflow_id),
            self.keys.taken(self.worker_id, workflow_id),
            max(self.pop_timeout / len(order), 0.05),
            "RIGHT",
            "LEFT",
        )
        return (workflow_id, raw) if raw is not None else None

    # -- running one ---------------------------------------------------------

    async def _handle(self, workflow_id: str, raw: bytes) -> None:
        try:
            dispatch = parse_dispatch(raw)
        except MalformedMessage as error:
            logger.warning(
                "queue: dropped a message on %s: %s", self.keys.queue(workflow_id), error
            )
            await self._quietly(
                self.redis.lrem(self.keys.taken(self.worker_id, workflow_id), 1, raw)
            )
            return
        running = Running(workflow_id, dispatch)
        self.active[dispatch.task_id] = running
        try:
            await self._run(running)
        except RedisError as error:
            logger.error(
                "queue: lost Redis at %s while answering run %s: %s",
                self.where,
                dispatch.run_id,
                error,
            )
        except Exception:  # a bug: answer this run as failed, keep serving
            logger.exception("queue: run %s failed", dispatch.run_id)
            await self._quietly(self._finish(running, FAILED, error="internal error on the worker"))
        finally:
            self.active.pop(dispatch.task_id, None)

    async def _run(self, running: Running) -> None:
        dispatch, workflow_id = running.dispatch, running.workflow_id
        if await self.redis.exists(self.keys.cancelled(dispatch.task_id)):
            await self._finish(running, CANCELLED)
            return
        blobs = blob_markers(dispatch.input, self.keys.blob_prefix(workflow_id, dispatch.run_id))
        if blobs:
            await self.redis.delete(*[key for _, key in blobs])
            places = ", ".join(place for place, _ in blobs)
            await self._finish(
                running,
                FAILED,
                error=f"binary inputs are not supported by this worker (text only): {places}",
                error_type="invalid_input",
            )
            return
        try:
            prepared = self.service.prepare(workflow_id, dispatch.input)
        except ModelComposeError as error:
            await self._finish(running, FAILED, error=str(error), error_type=error.error_type)
            return
        writer = None
        if prepared.streams:
            writer = StreamWriter(self.redis, self.keys.stream(workflow_id, dispatch.run_id))
            started = result_message(dispatch, self.worker_id, STREAMING, stream_key=writer.key)
            await self.redis.publish(self.keys.result(workflow_id, dispatch.run_id), started)
            running.streamed = True
        if running.cancelled:
            await self._finish(running, CANCELLED)
            return
        task = running.task = self.service.start_run(prepared, listener=writer)
        await task.wait()
        if writer is not None:
            await writer.drain()  # every chunk before the stream's last entry
        if task.status == TaskStatus.COMPLETED:
            # Ours: the run's token counts, so the front can report them.
            usage = dataclasses.asdict(task.usage)
            reason = task.finish_reason
            await self._finish(
                running, COMPLETED, output=task.output, usage=usage, finish_reason=reason
            )
        elif task.status == TaskStatus.CANCELLED and self.stopping and not running.cancelled:
            await self._give_back(running)
        elif task.status == TaskStatus.CANCELLED:
            await self._finish(running, CANCELLED)
        else:
            error = task.error
            await self._finish(
                running,
                FAILED,
                error=str(error) if error else "the run failed",
                error_type=error.error_type if error else "runtime_error",
            )

    async def _finish(self, running: Running, status: str, **fields: Any) -> bool:
        """Answer the run, if this worker still holds it (see scripts.FINISH)."""
        return await self._answer(
            running.workflow_id, running.dispatch, status, running.streamed, **fields
        )

    async def _answer(
        self,
        workflow_id: str,
        dispatch: Dispatch,
        status: str,
        streamed: bool,
        **fields: Any,
    ) -> bool:
        """Answer a run this worker holds (taken, or taken over from a dead
        worker), if it still does (see scripts.FINISH)."""
        payload = result_message(dispatch, self.worker_id, status, **fields)
        error = fields.get("error") or ("cancelled" if status == CANCELLED else "")
        answered = await self.scripts.finish(
            keys=[
                self.keys.taken(self.worker_id, workflow_id),
                self.keys.result(workflow_id, dispatch.run_id),
                self.keys.stream(workflow_id, dispatch.run_id),
            ],
            args=[
                dispatch.raw,
                payload,
                self.result_ttl,
                "1" if streamed else "0",
                "done" if status == COMPLETED else "error",
                str(error),
            ],
        )
        if answered:
            self.counts[status] += 1
        else:
            logger.warning(
                "queue: run %s was taken back from this worker (its lease lapsed); "
                "its %s result is dropped",
                dispatch.run_id,
                status,
            )
        return bool(answered)

    async def _give_back(self, running: Running) -> None:
        """A run cut short by this worker's stop: back to the queue for
        another (failed instead if its text was streaming)."""
        if running.streamed:
            await self._finish(running, FAILED, error=f"{STOPPING} mid-stream")
            return
        dispatch = running.dispatch
        await self.scripts.requeue(
            keys=[
                self.keys.taken(self.worker_id, running.workflow_id),
                self.keys.queue(running.workflow_id),
            ],
            args=[dispatch.raw, dispatch.raw],
        )

    # -- leases, dead workers, cancels ----------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.visibility / 3)
            try:
                renewed = await self.redis.set(
                    self.keys.lease(self.worker_id), b"1", px=self._lease_ms(), xx=True
                )
                if not renewed:
                    logger.warning(
                        "queue: this worker's lease lapsed (Redis restarted, or no heartbeat "
                        "for %gs): its runs may have gone to another worker",
                        self.visibility,
                    )
                    await self._register()
                    await self._drop_lost()
            except RedisError as error:
                logger.warning("queue: cannot renew the lease at %s: %s", self.where, error)

    async def _drop_lost(self) -> None:
        """Stop the runs another worker took back while this one seemed dead."""
        for running in list(self.active.values()):
            taken = self.keys.taken(self.worker_id, running.workflow_id)
            if await self.redis.lpos(taken, running.dispatch.raw) is None:
                running.cancelled = True
                if running.task is not None:
                    running.task.cancel("another worker took this run over")

    async def _reaper(self) -> None:
        while True:
            # Jitter: workers started together do not all look at once.
            await asyncio.sleep(self.visibility / 2 * random.uniform(0.8, 1.2))
            try:
                await self.reap()
            except RedisError as error:
                logger.warning("queue: cannot look for dead workers at %s: %s", self.where, error)

    async def reap(self) -> int:
        """Take over the runs of every worker whose lease lapsed; how many."""
        count = 0
        workers: dict[bytes, bytes] = await self.redis.hgetall(self.keys.workers)  # type: ignore[misc]
        for worker, held in workers.items():
            dead = worker.decode()
            if dead == self.worker_id or await self.redis.exists(self.keys.lease(dead)):
                continue
            for workflow_id in json.loads(held):
                if workflow_id not in self.holds:
                    self.holds.add(workflow_id)
                    await self._register()
                source = self.keys.taken(dead, workflow_id)
                mine = self.keys.taken(self.worker_id, workflow_id)
                while (raw := await self.redis.lmove(source, mine, "RIGHT", "LEFT")) is not None:
                    await self._orphan(workflow_id, raw, dead)
                    count += 1
            await self.redis.hdel(self.keys.workers, dead)  # type: ignore[misc]
        return count

    async def _orphan(self, workflow_id: str, raw: bytes, dead: str) -> None:
        """A dead worker's run, now held by this one: back in the queue, or
        answered (cancelled, or failed once its text streamed or its attempts
        ran out)."""
        mine = self.keys.taken(self.worker_id, workflow_id)
        try:
            dispatch = parse_dispatch(raw)
        except MalformedMessage:
            await self.redis.lrem(mine, 1, raw)
            return
        run = dispatch.run_id
        stream = self.keys.stream(workflow_id, run)
        limit = self.adapter.max_attempts
        if await self.redis.exists(self.keys.cancelled(dispatch.task_id)):
            await self._answer(workflow_id, dispatch, CANCELLED, False)
        elif await self.redis.exists(stream):
            error = f"worker {dead} stopped while streaming run {run}: a stream cannot be resumed"
            logger.warning("queue: %s", error)
            await self._answer(workflow_id, dispatch, FAILED, True, error=error)
        elif dispatch.attempt >= limit:
            error = (
                f"run {run} was taken {dispatch.attempt} times by workers that stopped before "
                f"finishing it (the last: {dead}); giving up (max_attempts {limit})"
            )
            logger.warning("queue: %s", error)
            await self._answer(workflow_id, dispatch, FAILED, False, error=error)
        else:
            logger.warning(
                "queue: worker %s stopped with run %s: back in the queue (attempt %d of %d)",
                dead,
                run,
                dispatch.attempt + 1,
                limit,
            )
            await self.scripts.requeue(
                keys=[mine, self.keys.queue(workflow_id)], args=[raw, requeued(dispatch)]
            )
            self.counts["requeued"] += 1

    async def _cancels(self) -> None:
        """The front's cancels (one channel for every workflow)."""
        pause = BACKOFF[0]
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.keys.cancel)
                    pause = BACKOFF[0]
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None and message["type"] == "message":
                            self._cancel(message["data"])
            except RedisError as error:
                logger.warning("queue: cancel channel at %s: %s", self.where, error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF[1])

    def _cancel(self, data: bytes) -> None:
        try:
            task_id = json.loads(data).get("task_id")
        except (ValueError, AttributeError):
            return
        running = self.active.get(task_id) if isinstance(task_id, str) else None
        if running is None:
            return
        running.cancelled = True
        if running.task is not None:
            running.task.cancel("cancelled by the front")

    @staticmethod
    async def _quietly(step: Awaitable[Any]) -> None:
        try:
            await step
        except RedisError as error:
            logger.warning("queue: %s", error)
