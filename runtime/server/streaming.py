"""The streaming edge both APIs share: a run's (or a generation's) events
come through one small bounded queue; `respond` waits for the first event or
the client's disconnect, then answers either JSON (its status chosen from that
first event: 400 for a prompt that does not fit, 503 when the model's queue is
full...) or Server-Sent Events, sent by sse-starlette, with a keep-alive ping
when a stream goes quiet.

A slow reader slows the run down instead of filling a buffer; a client that
reads nothing for `controller.write_timeout` is dropped. However the response
ends (a client that hangs up or stops reading, a refusal, the end of the
stream), the run does not outlive it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import AppStatus, SendTimeoutError
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from runtime.engine.logprobs import TokenLogprob

T = TypeVar("T")

logger = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's status for "the client hung up first"
PING_SECONDS = 15.0  # a comment after so long without an event keeps proxies from closing
PING = ServerSentEvent(comment="ping", sep="\n")
SSE_HEADERS = {"Cache-Control": "no-cache"}

# sse-starlette cuts every stream when uvicorn is told to exit. Ours end
# themselves: the service cancels what still runs at its shutdown timeout, and
# each stream then sends its final event.
AppStatus.disable_automatic_graceful_drain()


class EventQueue:
    """A run's listener: its text deltas, then the one event that ends them
    (`end_with`), in order, through a small bounded queue."""

    def __init__(self, size: int = 32) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(size)
        self.task: asyncio.Future[None] | None = None

    @staticmethod
    def delta(
        job_id: str, text: str, reasoning: bool, logprobs: tuple[TokenLogprob, ...] = ()
    ) -> Any:
        """A delta's event (a workflow run's: logprobs are only /v1's)."""
        if reasoning:
            return {"job_id": job_id, "text": text, "reasoning": True}
        return {"job_id": job_id, "text": text}

    def on_delta(
        self,
        job_id: str,
        text: str,
        streaming: bool,
        reasoning: bool = False,
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> Awaitable[None]:
        return self.queue.put(self.delta(job_id, text, reasoning, logprobs))

    def on_result(self, job_id: str, result: Any) -> None:
        """Results arrive with the event that ends the queue."""

    def end_with(self, last: Awaitable[Any], name: str | None = None) -> None:
        """Queue what `last` returns once it returns (after every delta)."""

        async def end() -> None:
            await self.queue.put(await last)

        self.task = asyncio.ensure_future(end())
        self.task.set_name(name or "events")

    async def next(self) -> Any:
        """The next event, waiting as long as it takes (for the first one)."""
        return await self.queue.get()

    async def next_or_ping(self) -> Any:
        """The next event, or `PING` once PING_SECONDS pass without one.

        No task per event (a stream may carry thousands): the queue is read
        directly, and only an empty one is awaited under a timeout, which
        cancels nothing but the wait (`Queue.get` loses no item when cancelled).
        """
        if not self.queue.empty():
            return self.queue.get_nowait()
        try:
            async with asyncio.timeout(PING_SECONDS):
                return await self.queue.get()
        except TimeoutError:
            return PING

    def cancel(self) -> None:
        """Stop producing events (a no-op once they ended)."""
        if self.task is not None:
            self.task.cancel()


class Disconnected:
    """What `until_disconnected` returns when the client hung up first."""


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_disconnected(waiting: Awaitable[T], receive: Receive) -> T | Disconnected:
    """What `waiting` returns, unless the ASGI server says the client hung up
    first (then `waiting` is cancelled)."""
    result = asyncio.ensure_future(waiting)
    hangup = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait({result, hangup}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (result, hangup):
            if not future.done():
                future.cancel()
    return result.result() if result.done() and not result.cancelled() else Disconnected()


# What a route makes of the first event: a response, or the stream's events
# (objects are sent as JSON, strings as they are).
Answer = Callable[[Any], Response | AsyncIterator[Any]]


async def respond(
    events: EventQueue, request: Request, answer: Answer, write_timeout: float | None = None
) -> Response:
    """Wait for the first event (or the client's disconnect, 499), then
    answer as `answer` says; a stream gives up on a client that reads
    nothing for `write_timeout` seconds (None: never). Errors `answer`
    raises reach the app's handlers."""
    first = await until_disconnected(events.next(), request.receive)
    if isinstance(first, Disconnected):
        events.cancel()
        return Response(status_code=CLIENT_CLOSED)
    try:
        answered = answer(first)
    except BaseException:
        events.cancel()
        raise
    if isinstance(answered, Response):
        events.cancel()
        return answered
    return _EventStream(
        _sent(answered, events),
        headers=SSE_HEADERS,
        sep="\n",
        ping=0,  # ours (`next_or_ping`) ping only a stream that has gone quiet
        background=BackgroundTask(events.cancel),  # also when the stream never started
        send_timeout=write_timeout,
    )


class _EventStream(EventSourceResponse):
    """sse-starlette's response, which gives up on a send that waits longer
    than `send_timeout` (a client that stopped reading: its TCP window is
    full and it never hangs up). Its events are closed then, which cancels
    the run and frees its slot; this says so in one line instead of the
    traceback an escaping SendTimeoutError would print."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.warning(
                "dropped a stream to %s: it read nothing for %g s (controller.write_timeout)",
                _client(scope),
                self.send_timeout,
            )
            if self.background is not None:
                await self.background()


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "a client"


async def _sent(stream: AsyncIterator[Any], events: EventQueue) -> AsyncIterator[Any]:
    """The stream's events as SSE data; strings as they are, and events a
    route made itself (named ones; `PING`, which the routes' streams pass on
    when `next_or_ping` gives it, as the comment it is) as they are."""
    try:
        async for event in stream:
            if isinstance(event, str | ServerSentEvent):
                yield event
            else:
                yield json.dumps(event, ensure_ascii=False)
    finally:
        events.cancel()
