"""An engine that also reports each generation's result to a callback: how
the metrics learn the tokens and timings of every generation, with the
component that asked for it (the engine itself only knows its model)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from runtime.engine.types import (
    Delta,
    Engine,
    EngineStats,
    Generation,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
)

# Called on the event loop with the engine's model and the generation's result.
ResultCallback = Callable[[ModelInfo, GenerationResult], None]


class ObservedGeneration:
    """A generation whose result, once read, goes to the callback too."""

    def __init__(self, generation: Generation, info: ModelInfo, on_result: ResultCallback) -> None:
        self._generation = generation
        self._info = info
        self._on_result = on_result
        self._reported = False

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._generation.__aiter__()

    async def result(self) -> GenerationResult:
        result = await self._generation.result()
        if not self._reported:  # once, however often the result is read
            self._reported = True
            self._on_result(self._info, result)
        return result

    def cancel(self) -> None:
        self._generation.cancel()


class ObservedEngine:
    """Implements the `Engine` protocol over another engine."""

    def __init__(self, engine: Engine, on_result: ResultCallback) -> None:
        self._engine = engine
        self._on_result = on_result

    @property
    def max_queue(self) -> int:
        return self._engine.max_queue

    @max_queue.setter
    def max_queue(self, value: int) -> None:
        self._engine.max_queue = value

    @property
    def info(self) -> ModelInfo:
        return self._engine.info

    def submit(self, request: GenerationRequest) -> Generation:
        generation = self._engine.submit(request)
        return ObservedGeneration(generation, self._engine.info, self._on_result)

    def stats(self) -> EngineStats:
        return self._engine.stats()

    async def close(self) -> None:
        await self._engine.close()
