"""The model pool: each distinct model is loaded once and shared.

"Distinct" means the resolved load settings (absolute path, context, batch,
threads, GPU layers, device, slots), so `n_ctx: null` and `n_ctx: 4096` share
one model when 4096 is the default. The waiting-queue bound is not a load
setting: components that share a model share its queue, bounded by the largest
`max_queue` any of them asked for. Nor is `keep_alive`: a shared model stays
loaded as long as the longest any of them asked for (see `PooledModel`).
Loading runs in a thread; callers that ask for the same model while it loads
wait for that one load. One pool per app.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from runtime.engine.pooled_model import EngineFactory, PooledModel
from runtime.engine.spec import resolve_spec
from runtime.engine.types import Engine, ModelInfo, ModelSpec
from runtime.errors import RuntimeFailure

__all__ = ["EngineFactory", "ModelPool", "load_engine"]


def load_engine(spec: ModelSpec) -> Engine:
    """The engine for `spec`: `spec.parallel` slots decoded together (1 included)."""
    from runtime.engine.batched import BatchedEngine

    return BatchedEngine.load(spec)


class ModelPool:
    def __init__(self, engine_factory: EngineFactory = load_engine) -> None:
        self._factory = engine_factory
        self._models: dict[ModelSpec, PooledModel] = {}
        self._closed = False

    async def model(self, spec: ModelSpec, keep_alive: float | None = None) -> PooledModel:
        """The pool's entry for `spec`, without loading it (`acquire` or
        `use` it). `keep_alive`: seconds without work before the model is
        unloaded; None keeps it loaded."""
        if self._closed:
            raise RuntimeFailure("the model pool is closed")
        resolved = await asyncio.to_thread(resolve_spec, spec)
        key = replace(resolved, max_queue=0)
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = PooledModel(resolved, self._factory, keep_alive)
        else:
            model.ask(max_queue=resolved.max_queue, keep_alive=keep_alive)
        return model

    async def acquire(self, spec: ModelSpec, keep_alive: float | None = None) -> Engine:
        """The engine for `spec`, loading the model on first use. With a
        keep_alive, hold it with `model(spec).use()` instead: an engine taken
        here may be unloaded once it has no work."""
        return await (await self.model(spec, keep_alive)).acquire()

    def models(self) -> list[PooledModel]:
        """Every model loaded at least once: loaded, loading again, or unloaded after idle."""
        return [model for model in self._models.values() if model.info is not None]

    def loaded(self) -> list[ModelInfo]:
        """The models loaded now (not the ones still loading)."""
        return [engine.info for engine in self.engines()]

    def engines(self) -> list[Engine]:
        """The engines loaded now, one per distinct model."""
        return [engine for model in self._models.values() if (engine := model.engine) is not None]

    async def close(self) -> None:
        """Close every engine (waiting for loads in progress first)."""
        self._closed = True
        models, self._models = list(self._models.values()), {}
        for model in models:
            await model.close()
