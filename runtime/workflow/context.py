"""What one workflow run carries besides its input: cancellation, and who
listens to its streamed text and generation results."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from runtime.engine.logprobs import TokenLogprob
from runtime.engine.types import CancelToken, ChatMessage, GenerationResult


class RunListener(Protocol):
    def on_delta(
        self,
        job_id: str,
        text: str,
        streaming: bool,
        reasoning: bool = False,
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> Awaitable[None] | None:
        """A piece of generated text: of the answer, or with `reasoning` of a
        reasoning block. `streaming` is the action's own setting:
        listeners that honour it (the CLI) show text live only when it is set.
        `logprobs`: its tokens' entries, when the request asked for them
        (only /v1 requests do). A listener may return an awaitable: the run
        waits for it, which is how a slow HTTP client slows the run down
        instead of filling a buffer."""

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        """A generation finished (one per generation, repeats included)."""


@dataclass
class RunContext:
    cancel: CancelToken = field(default_factory=CancelToken)
    listener: RunListener | None = None
    results: list[GenerationResult] = field(default_factory=list)
    # A chat turn's whole conversation (the Web UI's chat view): the run's
    # chat-completion action answers it instead of its rendered `messages`.
    messages: list[ChatMessage] | None = None

    async def delta(
        self,
        job_id: str,
        text: str,
        streaming: bool,
        *,
        reasoning: bool = False,
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> None:
        if self.listener is not None and text:
            waiting = self.listener.on_delta(job_id, text, streaming, reasoning, logprobs)
            if inspect.isawaitable(waiting):
                await waiting

    def finished(self, job_id: str, result: GenerationResult) -> None:
        self.results.append(result)
        if self.listener is not None:
            self.listener.on_result(job_id, result)
