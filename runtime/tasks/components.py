"""The model components of a compose file, bound to loaded engines.

Implements the runner's `ComponentRunner`: finds the component, makes sure its
model is loaded (once per file and load settings, through the pool), limits
its concurrency, and dispatches the action to its task. Each action and
generation holds its model for as long as it runs, so that a model with a
`keep_alive` is unloaded only when idle, and loaded again by the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from convert.locate import locate_model
from convert.reference import parse_model_reference
from runtime.config.schema import (
    ChatCompletionComponent,
    ComposeConfig,
    ModelComponent,
    TextGenerationComponent,
)
from runtime.config.units import parse_keep_alive
from runtime.engine import ModelPool
from runtime.engine.observed import ObservedEngine
from runtime.engine.pooled_model import ModelState, PooledModel
from runtime.engine.types import (
    AUTO_CONTEXT,
    CancelToken,
    Engine,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    ModelSpec,
)
from runtime.errors import ComponentUnavailableError, ModelComposeError, NotFoundError
from runtime.tasks.chat_completion import run_chat_completion
from runtime.tasks.common import generate
from runtime.tasks.text_generation import run_text_generation
from runtime.workflow.context import RunContext
from runtime.workflow.runner import ActionResult

StatusCallback = Callable[[str], None]
# Told every finished generation: the component that asked, its model, the result.
GenerationCallback = Callable[[str, ModelInfo, GenerationResult], None]
# Slots per model when the file does not say: enough for a few clients on a laptop.
DEFAULT_PARALLEL = 4


def model_spec(component: ModelComponent, base_dir: Path) -> ModelSpec:
    """The file and load settings of a component. Component-level knobs (as
    MC's llama.cpp example writes them) win over `options:` (MC's schema).
    Blocking: a Hub model that is not cached yet is downloaded here."""
    path = locate_model(parse_model_reference(component.model), base_dir)
    options = component.options
    n_ctx = component.context_length or component.n_ctx
    if options is not None:
        n_ctx = n_ctx or options.context_length or options.n_ctx
    return ModelSpec(
        path=str(path),
        n_ctx=AUTO_CONTEXT if n_ctx == "auto" else n_ctx,
        n_batch=component.n_batch or (options.n_batch if options else None),
        n_threads=component.n_threads or (options.n_threads if options else None),
        n_gpu_layers=component.n_gpu_layers
        if component.n_gpu_layers is not None
        else (options.n_gpu_layers if options else None),
        device=component.device,
        parallel=component.parallel or DEFAULT_PARALLEL,
        max_queue=component.max_queue,
        kv_cache_type=_memory_option(component, "kv_cache_type"),
        kv_cache_size=_memory_option(component, "kv_cache_size"),
        use_mmap=_memory_option(component, "use_mmap"),
        use_mlock=bool(_memory_option(component, "use_mlock")),
    )


def _memory_option(component: ModelComponent, name: str) -> Any:
    """A `MemoryOptions` key: the component's, else its `options:`'s."""
    value = getattr(component, name)
    if value is None and component.options is not None:
        value = getattr(component.options, name)
    return value


def component_keep_alive(component: ModelComponent) -> float | None:
    """Seconds the component's model stays loaded without requests; None: for
    ever. The component-level key wins over `options:`, as for load settings."""
    value = component.keep_alive
    if value is None and component.options is not None:
        value = component.options.keep_alive
    return parse_keep_alive(value)


class ModelComponents:
    def __init__(
        self,
        config: ComposeConfig,
        pool: ModelPool,
        status: StatusCallback | None = None,
        on_result: GenerationCallback | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.status = status
        self.on_result = on_result
        # Each component's entry in the pool: stable across idle unloads and
        # reloads, so it is never a closed engine that is cached here.
        self._models: dict[str, PooledModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._limits: dict[str, asyncio.Semaphore] = {
            c.id: asyncio.Semaphore(c.max_concurrent_count)
            for c in config.model_components
            if c.max_concurrent_count > 0
        }
        # Preloaded components whose model failed to load: each answers with
        # its error until the server restarts; the others keep serving.
        self.failures: dict[str, ComponentUnavailableError] = {}
        # Generations running through `generate` (no task holds them).
        self._generating: list[CancelToken] = []

    def component(self, component_id: str) -> ModelComponent:
        """The model component; NotFoundError for an unknown id, or for a
        workflow component (the runner runs those: they have no model)."""
        try:
            component = self.config.component(component_id)
        except KeyError:
            raise NotFoundError(f"unknown component '{component_id}'") from None
        if not isinstance(component, ModelComponent):
            raise NotFoundError(f"component '{component_id}' runs a workflow: it has no model")
        return component

    async def model(self, component_id: str) -> PooledModel:
        """The component's model in the pool, not necessarily loaded;
        `ComponentUnavailableError` when it cannot be found."""
        if component_id in self._models:
            return self._models[component_id]
        failure = self.failures.get(component_id)
        if failure is not None:  # a fresh error: re-raising one object grows its traceback
            raise ComponentUnavailableError(component_id, failure.cause)
        lock = self._locks.setdefault(component_id, asyncio.Lock())
        async with lock:
            if component_id not in self._models:
                component = self.component(component_id)
                try:
                    # In a worker thread: it may download a model (never on the event loop).
                    spec = await asyncio.to_thread(
                        model_spec, component, Path(self.config.base_dir)
                    )
                    if self.status:  # before the checks, which may refuse the file
                        self.status(f"loading model {Path(spec.path).name} for '{component.id}'")
                    model = await self.pool.model(spec, component_keep_alive(component))
                except ModelComposeError as error:
                    raise ComponentUnavailableError(component_id, error) from error
                self._models[component_id] = model
        return self._models[component_id]

    async def engine(self, component_id: str) -> Engine:
        """The component's engine, loading its model if it is not loaded;
        `ComponentUnavailableError` when the model cannot be loaded. With a
        keep_alive, the engine may be unloaded once idle: run requests in `use`."""
        return await self._acquire(component_id, await self.model(component_id))

    @contextlib.asynccontextmanager
    async def use(self, component_id: str) -> AsyncIterator[Engine]:
        """The component's engine, kept loaded until the block ends."""
        model = await self.model(component_id)
        model.hold()
        try:
            # Through `engine`: the one way every generation gets its engine.
            yield await self.engine(component_id)
        finally:
            model.release()

    def _observed(self, component_id: str, engine: Engine) -> Engine:
        """`engine`, reporting each result to `on_result` with `component_id`:
        here is the one place that knows both the component and the model."""
        on_result = self.on_result
        if on_result is None:
            return engine
        return ObservedEngine(engine, lambda info, result: on_result(component_id, info, result))

    async def _acquire(self, component_id: str, model: PooledModel) -> Engine:
        try:
            return await model.acquire()
        except ModelComposeError as error:
            raise ComponentUnavailableError(component_id, error) from error

    def loaded(self, component_id: str) -> Engine | None:
        """The component's engine if its model is loaded, without loading it
        (the Web UI's model panel must not trigger a load)."""
        model = self._models.get(component_id)
        return model.engine if model is not None else None

    def pooled(self, component_id: str) -> PooledModel | None:
        """The component's model in the pool, without loading it; None until
        the component first asked for it."""
        return self._models.get(component_id)

    def unloaded(self) -> dict[str, ModelState]:
        """The components whose model was unloaded after its keep_alive (or
        is loading again): what /health reports."""
        return {
            component_id: model.state
            for component_id, model in self._models.items()
            if model.info is not None and model.state != ModelState.LOADED
        }

    async def preload(self) -> list[str]:
        """Load the model of every component marked `preload` (the default);
        the ids of those components. One that fails goes in `failures`."""
        preloaded = [c.id for c in self.config.model_components if c.preload]
        for component_id in preloaded:
            try:
                await self.engine(component_id)
            except ComponentUnavailableError as error:
                self.failures[component_id] = error
        return preloaded

    def cancel_generations(self, reason: str) -> None:
        """Cancel every generation running through `generate` (the server is stopping)."""
        for token in list(self._generating):
            token.cancel(reason)

    async def generate(
        self, component_id: str, request: GenerationRequest, context: RunContext
    ) -> GenerationResult:
        """One generation on a component's model, outside any workflow (the
        OpenAI routes), under the same concurrency limit as its actions.
        `context.cancel` must be the request's own token."""
        self._generating.append(context.cancel)
        try:
            async with self.use(component_id) as engine:
                limit = self._limits.get(component_id)
                async with limit if limit is not None else contextlib.nullcontext():
                    observed = self._observed(component_id, engine)
                    return await generate(observed, request, context, component_id, streaming=True)
        finally:
            self._generating.remove(context.cancel)

    async def run_action(
        self, component_id: str, action_id: str | None, input: Any, context: RunContext, job_id: str
    ) -> ActionResult:
        component = self.component(component_id)
        async with self.use(component_id) as engine:
            engine = self._observed(component_id, engine)
            limit = self._limits.get(component_id)
            async with limit if limit is not None else contextlib.nullcontext():
                if isinstance(component, ChatCompletionComponent):
                    action = component.action(action_id)
                    return await run_chat_completion(
                        engine, component, action, input, context, job_id
                    )
                if isinstance(component, TextGenerationComponent):
                    action = component.action(action_id)
                    return await run_text_generation(
                        engine, component, action, input, context, job_id
                    )
        raise NotFoundError(f"component '{component_id}' has no runnable action")
