"""What one workflow run carries besides its input: cancellation, and who
listens to its streamed text and generation results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from runtime.engine.types import CancelToken, GenerationResult


class RunListener(Protocol):
    def on_delta(self, job_id: str, text: str, streaming: bool) -> None:
        """A piece of generated text. `streaming` is the action's own setting:
        listeners that honour it (the CLI) show text live only when it is set."""

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        """A generation finished (one per generation, repeats included)."""


@dataclass
class RunContext:
    cancel: CancelToken = field(default_factory=CancelToken)
    listener: RunListener | None = None
    results: list[GenerationResult] = field(default_factory=list)

    def delta(self, job_id: str, text: str, streaming: bool) -> None:
        if self.listener is not None and text:
            self.listener.on_delta(job_id, text, streaming)

    def finished(self, job_id: str, result: GenerationResult) -> None:
        self.results.append(result)
        if self.listener is not None:
            self.listener.on_result(job_id, result)
