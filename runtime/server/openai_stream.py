"""One /v1 generation running in the background, and its stream's chunks.

The generation's text deltas, then its result (or error), come out of one
small bounded queue (streaming.EventQueue): a slow reader slows the
generation down instead of filling a buffer. Whoever drops the generation (a
client that hangs up, a failed request) cancels it, so the model is free for
the next request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from runtime.engine.logprobs import TokenLogprob
from runtime.engine.types import FinishReason, GenerationRequest, GenerationResult, Usage
from runtime.errors import ModelComposeError, RuntimeFailure
from runtime.server.errors import ServiceUnavailable
from runtime.server.openai_errors import openai_error
from runtime.server.openai_models import DONE
from runtime.server.streaming import PING, EventQueue
from runtime.tasks.components import ModelComponents
from runtime.workflow.context import RunContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextEvent:
    """A text delta: of the answer, or of the reasoning (`reasoning_content`)."""

    text: str
    reasoning: bool = False
    logprobs: tuple[TokenLogprob, ...] = ()  # its tokens', when the request asked


# What the queue carries: text deltas, then the result or the error that ends them.
Event = TextEvent | GenerationResult | Exception


class BackgroundGeneration(EventQueue):
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
        super().__init__(queue_size)
        # The run is this one request: cancelling either cancels both.
        self.context = RunContext(cancel=request.cancel, listener=self if streaming else None)
        self.end_with(self._produce(components, component_id, request), name=f"v1:{component_id}")

    @staticmethod
    def delta(
        job_id: str, text: str, reasoning: bool, logprobs: tuple[TokenLogprob, ...] = ()
    ) -> TextEvent:
        return TextEvent(text, reasoning, logprobs)

    async def _produce(
        self, components: ModelComponents, component_id: str, request: GenerationRequest
    ) -> Event:
        try:
            return await components.generate(component_id, request, self.context)
        except ModelComposeError as error:
            return error
        except Exception as error:  # a bug: fail this request, keep serving
            logger.exception("generation on '%s' failed", component_id)
            return RuntimeFailure(f"the generation failed: {error}")

    def cancel(self) -> None:
        """Stop generating (a no-op once finished)."""
        self.context.cancel.cancel()
        super().cancel()


def unfinished_error(result: GenerationResult) -> Exception | None:
    """The error to report for a generation that did not finish normally."""
    if result.finish_reason == FinishReason.CANCELLED:
        return ServiceUnavailable(f"the generation was cancelled: {result.detail or 'stopping'}")
    if result.finish_reason == FinishReason.ERROR:
        return RuntimeFailure(f"the generation failed: {result.detail or 'unknown error'}")
    return None


@dataclass
class ChunkFormat:
    """How one endpoint writes its stream: chunks before the first delta, the
    chunks of a delta (none while text is held back, several for a tool
    call), the finishing chunks, and the usage chunk (None: not asked for)."""

    head: list[dict[str, Any]]
    delta: Callable[[TextEvent], list[dict[str, Any]]]
    finish: Callable[[GenerationResult], list[dict[str, Any]]]
    usage: Callable[[Usage], dict[str, Any]] | None


async def chunk_events(
    generation: BackgroundGeneration, first: Event, chunks: ChunkFormat
) -> AsyncIterator[dict[str, Any] | str]:
    """The stream from the first event on. An error after it started is an
    `{"error": ...}` event (OpenAI clients raise it), then `[DONE]`."""
    for chunk in chunks.head:
        yield chunk
    event = first
    while isinstance(event, TextEvent) or event is PING:
        for chunk in [PING] if event is PING else chunks.delta(event):
            yield chunk
        event = await generation.next_or_ping()
    if isinstance(event, GenerationResult):
        event = unfinished_error(event) or event
    if isinstance(event, GenerationResult):
        for chunk in chunks.finish(event):
            yield chunk
        if chunks.usage is not None:
            yield chunks.usage(event.usage)
    else:
        yield openai_error(event)[1]
    yield DONE
