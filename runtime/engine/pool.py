"""The model pool: each distinct model is loaded once and shared.

"Distinct" means the resolved load settings (absolute path, context, batch,
threads, GPU layers, device, slots), so `n_ctx: null` and `n_ctx: 4096` share
one model when 4096 is the default. The waiting-queue bound is not a load
setting: components that share a model share its queue, bounded by the largest
`max_queue` any of them asked for. Loading runs in a thread; callers that ask for
the same model while it loads wait for that one load. One pool per app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from runtime.engine.spec import resolve_spec
from runtime.engine.types import Engine, ModelInfo, ModelSpec
from runtime.errors import RuntimeFailure

logger = logging.getLogger(__name__)

# Loads a model for a resolved spec and returns its engine (blocking).
EngineFactory = Callable[[ModelSpec], Engine]


def load_engine(spec: ModelSpec) -> Engine:
    """The engine for `spec`: `spec.parallel` slots decoded together (1 included)."""
    from runtime.engine.batched import BatchedEngine

    return BatchedEngine.load(spec)


class ModelPool:
    def __init__(self, engine_factory: EngineFactory = load_engine) -> None:
        self._factory = engine_factory
        self._loads: dict[ModelSpec, asyncio.Task[Engine]] = {}
        self._closed = False

    async def acquire(self, spec: ModelSpec) -> Engine:
        """The engine for `spec`, loading the model on first use."""
        if self._closed:
            raise RuntimeFailure("the model pool is closed")
        resolved = await asyncio.to_thread(resolve_spec, spec)
        key = replace(resolved, max_queue=0)
        load = self._loads.get(key)
        if load is None:
            logger.info("loading model %s", resolved.path)
            load = asyncio.ensure_future(asyncio.to_thread(self._factory, resolved))
            load.add_done_callback(lambda task: self._forget_failed(key, task))
            self._loads[key] = load
        # shield: a caller that gives up must not abort a load others wait for.
        engine = await asyncio.shield(load)
        engine.max_queue = max(engine.max_queue, resolved.max_queue)
        return engine

    def loaded(self) -> list[ModelInfo]:
        """The models loaded so far (not the ones still loading)."""
        return [engine.info for engine in self.engines()]

    def engines(self) -> list[Engine]:
        """The engines loaded so far, one per distinct model."""
        return [
            task.result()
            for task in self._loads.values()
            if task.done() and not task.cancelled() and task.exception() is None
        ]

    async def close(self) -> None:
        """Close every engine (waiting for loads in progress first)."""
        self._closed = True
        loads, self._loads = list(self._loads.values()), {}
        for load in loads:
            try:
                engine = await load
            except Exception:
                continue  # a failed load left nothing to close
            await engine.close()

    def _forget_failed(self, spec: ModelSpec, task: asyncio.Task[Engine]) -> None:
        # A failed load is not cached: the next acquire tries again (the file
        # may have been fixed or finished downloading).
        if (task.cancelled() or task.exception() is not None) and self._loads.get(spec) is task:
            del self._loads[spec]
