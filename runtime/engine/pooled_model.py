"""One distinct model of the pool: loaded on first use and shared by its
callers; with a keep_alive, unloaded after that long without work and loaded
again by the next caller (Ollama's `keep_alive`).

Work is seen two ways. Leases (`use()`) are held from before the load until
the caller's generation ends, so the model is never unloaded between handing
out its engine and the request reaching it. The engine's stats (busy slots,
waiting requests) cover callers that took the engine without a lease
(`acquire()`). The idle clock starts when the last lease ends, or when a load
completes with none; a new lease stops it. The unload and the reload each log
one INFO line on `IDLE_LOGGER` (`model-compose up` prints them).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

from runtime.engine.types import Engine, ModelInfo, ModelSpec
from runtime.errors import RuntimeFailure

logger = logging.getLogger(__name__)
IDLE_LOGGER = f"{__name__}.idle"
idle_logger = logging.getLogger(IDLE_LOGGER)

# Loads a model for a resolved spec and returns its engine (blocking).
EngineFactory = Callable[[ModelSpec], Engine]

# How soon to look again when the clock ran out but the engine still had work
# that no lease announced (stats are read a step behind the worker).
RECHECK_S = 0.25


class ModelState(enum.StrEnum):
    LOADING = "loading"
    LOADED = "loaded"
    # Never loaded (or its load failed), unloaded after keep_alive, or being unloaded.
    UNLOADED = "unloaded"


def longest(first: float | None, second: float | None) -> float | None:
    """The longer keep_alive (None, for ever, is the longest): on a shared
    model no caller's setting unloads it while another wants it kept."""
    if first is None or second is None:
        return None
    return max(first, second)


class PooledModel:
    def __init__(self, spec: ModelSpec, factory: EngineFactory, keep_alive: float | None) -> None:
        self.spec = spec  # resolved; its max_queue is the largest asked for
        self.keep_alive = keep_alive  # seconds without work before unloading; None: never
        self.info: ModelInfo | None = None  # known once loaded; kept after an unload
        self._factory = factory
        self._load: asyncio.Future[Engine] | None = None
        self._closing: asyncio.Future[None] | None = None
        self._users = 0
        self._timer: asyncio.TimerHandle | None = None
        self._unloaded_after: float | None = None  # the idle time of the last unload
        self._closed = False

    @property
    def name(self) -> str:
        return Path(self.spec.path).name

    @property
    def state(self) -> ModelState:
        if self._load is None:
            return ModelState.UNLOADED
        return ModelState.LOADED if self._load.done() else ModelState.LOADING

    @property
    def engine(self) -> Engine | None:
        """The loaded engine, without loading it; None while not loaded."""
        load = self._load
        return load.result() if load is not None and _succeeded(load) else None

    def ask(self, *, max_queue: int, keep_alive: float | None) -> None:
        """Another caller shares this model: the largest queue and the
        longest keep_alive of them all apply."""
        if max_queue > self.spec.max_queue:
            self.spec = replace(self.spec, max_queue=max_queue)
        if self.engine is not None:
            self.engine.max_queue = max(self.engine.max_queue, max_queue)
        kept = longest(self.keep_alive, keep_alive)
        if kept != self.keep_alive:
            self.keep_alive = kept
            self._disarm()
            self._arm()  # the clock restarts with the new setting

    async def acquire(self) -> Engine:
        """The engine, loading the model if it is not loaded. Waits for an
        unload in progress to finish, then loads it again."""
        while True:
            if self._closed:
                raise RuntimeFailure("the model pool is closed")
            if self._closing is not None:
                # shield: a caller that gives up must not abort the unload.
                await asyncio.shield(self._closing)
                continue
            load = self._load or self._start_load()
            # shield: a caller that gives up must not abort a load others wait for.
            engine = await asyncio.shield(load)
            if self._load is load:  # not unloaded since (a caller without a lease)
                return engine

    def hold(self) -> None:
        """Keep the model loaded until `release`: a request on its way (or
        waiting for the load) holds off the idle clock."""
        self._users += 1
        self._disarm()

    def release(self) -> None:
        """The request is done; the last one out starts the idle clock."""
        self._users -= 1
        self._arm()

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[Engine]:
        """The engine, held (see `hold`) until the block ends."""
        self.hold()
        try:
            yield await self.acquire()
        finally:
            self.release()

    async def close(self) -> None:
        """Close the engine (waiting for a load or an unload in progress)."""
        self._closed = True
        self._disarm()
        if self._closing is not None:
            await asyncio.shield(self._closing)
        load, self._load = self._load, None
        if load is None:
            return
        try:
            engine = await load
        except Exception:
            return  # a failed load left nothing to close
        await engine.close()

    def _start_load(self) -> asyncio.Future[Engine]:
        if self._unloaded_after is not None:
            idle_logger.info(
                "loading model %s again (unloaded after %s idle)",
                self.name,
                idle_text(self._unloaded_after),
            )
        else:
            logger.info("loading model %s", self.spec.path)
        load = asyncio.ensure_future(asyncio.to_thread(self._factory, self.spec))
        load.add_done_callback(self._loaded)
        self._load = load
        return load

    def _loaded(self, load: asyncio.Future[Engine]) -> None:
        if not _succeeded(load):
            # A failed load is not kept: the next acquire tries again (the
            # file may have been fixed or finished downloading).
            if self._load is load:
                self._load = None
            return
        engine = load.result()
        self.info = engine.info
        self._unloaded_after = None
        engine.max_queue = max(engine.max_queue, self.spec.max_queue)
        self._arm()

    def _arm(self) -> None:
        """Start the idle clock, if nothing uses the loaded model."""
        if self.keep_alive is None or self._users or self._timer is not None or self._closed:
            return
        if self.engine is None:
            return  # a load in progress starts the clock when it completes
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.keep_alive, self._expire, self.keep_alive)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, idle: float) -> None:
        self._timer = None
        engine = self.engine
        if engine is None or self._users or self._closed:
            return
        stats = engine.stats()
        if stats.busy or stats.waiting:  # a caller without a lease: look again soon
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(RECHECK_S, self._expire, idle)
            return
        idle_logger.info("unloading model %s after %s idle", self.name, idle_text(idle))
        self._load, self._unloaded_after = None, idle
        self._closing = asyncio.ensure_future(self._unload(engine))

    async def _unload(self, engine: Engine) -> None:
        try:
            await engine.close()
        except Exception:  # the next load must not be blocked by a failed close
            logger.exception("unloading model %s failed", self.name)
        finally:
            self._closing = None


def idle_text(seconds: float) -> str:
    """5m, 1h, 30s, 1.5s: as a compose file would write it."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _succeeded(load: asyncio.Future[Engine]) -> bool:
    return load.done() and not load.cancelled() and load.exception() is None
