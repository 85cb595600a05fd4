"""The event-loop side of a generation, and the thread-safe way to feed it.

The worker thread never touches asyncio objects directly: every delta and the
final result cross with `loop.call_soon_threadsafe`, which also keeps them in
order. Deltas queue without bound: a generation holds at most `max_tokens`
small strings, and dropping one would corrupt the text.
"""

from __future__ import annotations

import asyncio
import time

from runtime.engine.types import Delta, GenerationRequest, GenerationResult

_END = None  # queued after the last delta


class StreamingGeneration:
    """A submitted request: iterate it for deltas, then await `result()`.

    Created on the event loop thread; bound to the loop running at submit time,
    so one engine (and its worker thread) can serve any number of loops.
    """

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.submitted_at = time.perf_counter()
        self._loop = loop
        self._deltas: asyncio.Queue[Delta | None] = asyncio.Queue()
        self._result: asyncio.Future[GenerationResult] = loop.create_future()
        # The error is raised by iteration and by result(); a caller that uses
        # only one of them must not get "exception was never retrieved" noise.
        self._result.add_done_callback(_observe)
        self._ended = False

    # -- consumer side (event loop) ------------------------------------------------

    def __aiter__(self) -> StreamingGeneration:
        return self

    async def __anext__(self) -> Delta:
        if self._ended:
            raise StopAsyncIteration
        item = await self._deltas.get()
        if item is _END:
            self._ended = True
            error = self._result.exception()
            if error is not None:
                raise error
            raise StopAsyncIteration
        return item

    async def result(self) -> GenerationResult:
        """The final result (whether or not the deltas were read).

        Cancelling the caller does not cancel the generation; use `cancel()`.
        """
        return await asyncio.shield(self._result)

    def cancel(self) -> None:
        self.request.cancel.cancel()

    @property
    def is_cancelled(self) -> bool:
        return self.request.cancel.is_cancelled

    def done(self) -> bool:
        return self._result.done()

    # -- producer side (any thread) -------------------------------------------------

    def post_delta(self, delta: Delta) -> bool:
        """Hand a delta to the loop; False when the loop is gone (nobody listens)."""
        return self._call(self._deltas.put_nowait, delta)

    def post_delta_if_any(self, delta: Delta | None) -> bool:
        return delta is None or self.post_delta(delta)

    def post_result(self, result: GenerationResult) -> bool:
        return self._call(self._finish, result, None)

    def post_error(self, error: BaseException) -> bool:
        return self._call(self._finish, None, error)

    def _call(self, callback: object, *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]
        except RuntimeError:  # the loop is closed
            return False
        return True

    def _finish(self, result: GenerationResult | None, error: BaseException | None) -> None:
        if self._result.done():
            return
        if error is not None:
            self._result.set_exception(error)
        else:
            assert result is not None
            self._result.set_result(result)
        self._deltas.put_nowait(_END)


def _observe(future: asyncio.Future[GenerationResult]) -> None:
    if not future.cancelled():
        future.exception()
