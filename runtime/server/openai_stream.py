"""One /v1 generation running in the background, and its Server-Sent Events.

The generation's text deltas, then its result (or error), come out of one
small bounded queue: a slow reader slows the generation down instead of
filling a buffer. Whoever drops the generation (a client that hangs up, a
failed request) cancels it, so the model is free for the next request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from runtime.engine.types import FinishReason, GenerationRequest, GenerationResult, Usage
from runtime.errors import ModelComposeError, RuntimeFailure
from runtime.server.errors import ServiceUnavailable
from runtime.server.openai_errors import error_body
from runtime.server.sse import SSE_HEADERS
from runtime.tasks.components import ModelComponents
from runtime.workflow.context import RunContext

logger = logging.getLogger(__name__)

# What the queue carries: a text delta, then the result or the error that ends it.
Event = str | GenerationResult | Exception

DONE = b"data: [DONE]\n\n"


def sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class BackgroundGeneration:
    """A generation on a component, started at once. With `streaming`, its
    deltas are queued too (this object is the run's listener)."""

    def __init__(
        self,
        components: ModelComponents,
        component_id: str,
        request: GenerationRequest,
        streaming: bool,
        queue_size: int = 32,
    ) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(queue_size)
        self.context = RunContext(listener=self if streaming else None)
        self.task = asyncio.create_task(
            self._produce(components, component_id, request), name=f"v1:{component_id}"
        )

    # -- the run's listener ---------------------------------------------------------

    def on_delta(self, job_id: str, text: str, streaming: bool) -> Any:
        return self.queue.put(text)

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        pass

    # -- producer and consumer ------------------------------------------------------

    async def _produce(
        self, components: ModelComponents, component_id: str, request: GenerationRequest
    ) -> None:
        event: Event
        try:
            event = await components.generate(component_id, request, self.context)
        except ModelComposeError as error:
            event = error
        except Exception as error:  # a bug: fail this request, keep serving
            logger.exception("generation on '%s' failed", component_id)
            event = RuntimeFailure(f"the generation failed: {error}")
        await self.queue.put(event)

    async def next(self) -> Event:
        return await self.queue.get()

    async def next_unless_disconnected(self, request: Request) -> Event | None:
        """The next event, or None (and the generation cancelled) when the
        client hangs up first."""
        getter = asyncio.ensure_future(self.queue.get())
        try:
            while True:
                done, _ = await asyncio.wait({getter}, timeout=0.5)
                if done:
                    return getter.result()
                if await request.is_disconnected():
                    self.cancel()
                    return None
        finally:
            getter.cancel()

    def cancel(self) -> None:
        """Stop generating (a no-op once finished)."""
        self.context.cancel.cancel()
        self.task.cancel()


def unfinished_error(result: GenerationResult) -> Exception | None:
    """The error to report for a generation that did not finish normally."""
    if result.finish_reason == FinishReason.CANCELLED:
        return ServiceUnavailable(f"the generation was cancelled: {result.detail or 'stopping'}")
    if result.finish_reason == FinishReason.ERROR:
        return RuntimeFailure(f"the generation failed: {result.detail or 'unknown error'}")
    return None


@dataclass
class ChunkFormat:
    """How one endpoint writes its stream: chunks before the first delta, a
    delta, the finishing chunk, and the usage chunk (None: not asked for)."""

    head: list[dict[str, Any]]
    delta: Callable[[str], dict[str, Any]]
    finish: Callable[[GenerationResult], dict[str, Any]]
    usage: Callable[[Usage], dict[str, Any]] | None


async def sse_events(
    generation: BackgroundGeneration, first: Event, chunks: ChunkFormat
) -> AsyncIterator[bytes]:
    """The stream from the first event on. An error after it started is an
    `{"error": ...}` event (OpenAI clients raise it), then `[DONE]`."""
    try:
        for chunk in chunks.head:
            yield sse(chunk)
        event = first
        while isinstance(event, str):
            yield sse(chunks.delta(event))
            event = await generation.next()
        if isinstance(event, GenerationResult):
            event = unfinished_error(event) or event
        if isinstance(event, GenerationResult):
            yield sse(chunks.finish(event))
            if chunks.usage is not None:
                yield sse(chunks.usage(event.usage))
        else:
            yield sse(error_body(event)[1])
        yield DONE
    finally:
        generation.cancel()


class GenerationStream(StreamingResponse):
    """SSE that cancels its generation however the response ends, even when
    the client hangs up before the body's iterator ever started."""

    def __init__(self, generation: BackgroundGeneration, first: Event, chunks: ChunkFormat) -> None:
        super().__init__(
            sse_events(generation, first, chunks),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
        self.generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.generation.cancel()
