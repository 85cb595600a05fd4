"""A model that says what a test scripts, for what a real small model will
not do on cue: reason, wait, or ramble until it is cancelled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from runtime.engine.types import Delta, GenerationRequest, GenerationResult
from tests.webui.conftest import Page


class ScriptedGeneration:
    """A generation whose text comes from `script` (a `Delta` for a piece of
    reasoning, a string for a piece of the answer), and whose result is
    `result(answer)`: what the engine contract promises, without a model."""

    def __init__(
        self, script: AsyncIterator[str | Delta], result: Callable[[str], GenerationResult]
    ) -> None:
        self.script, self.make_result, self.text = script, result, ""

    async def __aiter__(self) -> AsyncIterator[Delta]:
        async for piece in self.script:
            if isinstance(piece, Delta):
                yield piece
                continue
            self.text += piece
            yield Delta(piece, len(self.text))

    async def result(self) -> GenerationResult:
        return self.make_result(self.text)

    def cancel(self) -> None:
        pass


def answer_with(
    page: Page,
    monkeypatch: pytest.MonkeyPatch,
    script: Callable[[GenerationRequest], AsyncIterator[str | Delta]],
    result: Callable[[str], GenerationResult],
) -> None:
    """The page's models answer every request with `script` (see ScriptedGeneration)."""

    real_engine = page.service.components.engine

    class Scripted:
        def __init__(self, real: Any) -> None:
            self.info = real.info  # the loaded model's, as /metrics reads it

        def submit(self, request: GenerationRequest) -> ScriptedGeneration:
            return ScriptedGeneration(script(request), result)

    async def engine(component_id: str) -> Any:
        return Scripted(await real_engine(component_id))

    monkeypatch.setattr(page.service.components, "engine", engine)
