"""The serial engine: one loaded model, one request at a time.

A dedicated worker thread owns the llama.cpp context; the event loop only
queues requests and reads deltas. This is the baseline the batching scheduler
is measured against, and it keeps the same shape: encode, budget, prefill,
then one token per step until the request state says it is finished.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading

from runtime.engine.chat import ChatTemplate, prompt_text
from runtime.engine.generation import StreamingGeneration
from runtime.engine.model import LoadedModel, load_model
from runtime.engine.request_state import RequestState, token_budget
from runtime.engine.types import (
    EngineStats,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    ModelSpec,
)
from runtime.errors import InputError, ModelComposeError, QueueFullError, RuntimeFailure

logger = logging.getLogger(__name__)

_STOP_WORKER = None


class SerialEngine:
    """Implements the `Engine` protocol over one `LoadedModel`."""

    def __init__(self, model: LoadedModel, *, max_queue: int = 64) -> None:
        self._model = model
        # Requests that may wait while one runs; beyond it submit() refuses.
        self.max_queue = max_queue
        self._chat = ChatTemplate(
            model.chat_template,
            bos_token=model.special.bos_text,
            eos_token=model.special.eos_text,
        )
        self._jobs: queue.SimpleQueue[StreamingGeneration | None] = queue.SimpleQueue()
        self._closed = False
        self._current: StreamingGeneration | None = None
        # Submitted and not yet finished (queued or running); submit() runs on
        # the event loop and the worker counts down, hence the lock.
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._work, name=f"llama-worker:{model.info.name}", daemon=True
        )
        self._thread.start()

    @classmethod
    def load(cls, spec: ModelSpec) -> SerialEngine:
        """Load the model and start the worker (blocking; run it in a thread)."""
        return cls(load_model(spec), max_queue=spec.max_queue)

    @property
    def info(self) -> ModelInfo:
        return self._model.info

    @property
    def model(self) -> LoadedModel:
        return self._model

    @property
    def chat_template(self) -> ChatTemplate:
        return self._chat

    @property
    def worker_thread_id(self) -> int | None:
        """The thread that runs every llama.cpp call for this engine."""
        return self._thread.ident

    def submit(self, request: GenerationRequest) -> StreamingGeneration:
        """Queue a request; returns at once. Call it on the event loop thread.

        `QueueFullError` when one request runs and `max_queue` requests wait.
        """
        validate_request(request)
        if self._closed:
            raise RuntimeFailure(f"the engine for {self.info.name} is closed")
        with self._pending_lock:
            if self._pending > self.max_queue:  # one runs, max_queue wait
                raise QueueFullError(
                    f"too many requests: {self._pending - 1} are already waiting for "
                    "the one slot; retry later"
                )
            self._pending += 1
        generation = StreamingGeneration(request, asyncio.get_running_loop())
        self._jobs.put(generation)
        return generation

    def stats(self) -> EngineStats:
        with self._pending_lock:
            pending = self._pending
        busy = 1 if self._current is not None else 0
        return EngineStats(slots=1, busy=busy, waiting=max(0, pending - busy))

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The tokens the engine would feed the model for `request`.

        Uses only the vocabulary, which llama.cpp allows from any thread; still,
        call it off the event loop for long prompts.
        """
        return self._model.encode(prompt_text(self._chat, request))

    def shutdown(self) -> None:
        """Blocking close: cancel what is queued or running, stop the worker,
        free the model. Idempotent."""
        if self._closed:
            self._thread.join()
            return
        self._closed = True
        current = self._current
        if current is not None:
            current.cancel()
        self._jobs.put(_STOP_WORKER)
        self._thread.join()

    async def close(self) -> None:
        await asyncio.to_thread(self.shutdown)

    # -- worker thread ----------------------------------------------------------

    def _work(self) -> None:
        try:
            while (generation := self._jobs.get()) is not _STOP_WORKER:
                self._current = generation
                try:
                    self._serve(generation)
                finally:
                    self._current = None
                    with self._pending_lock:
                        self._pending -= 1
        finally:
            self._model.close()

    def _serve(self, generation: StreamingGeneration) -> None:
        try:
            result = self._generate(generation)
        except ModelComposeError as error:
            generation.post_error(error)
        except Exception as error:
            logger.exception("generation failed on %s", self.info.name)
            # The context may hold half-evaluated tokens: forget it all.
            self._model.reset()
            failure = RuntimeFailure(f"generation failed: {error}")
            failure.__cause__ = error
            generation.post_error(failure)
        else:
            if result is not None:
                generation.post_result(result)

    def _generate(self, generation: StreamingGeneration) -> GenerationResult | None:
        request = generation.request
        if request.cancel.is_cancelled or self._closed:
            # Cancelled while queued: no model work at all.
            return GenerationResult(
                text="", finish_reason=FinishReason.CANCELLED, detail=self._cancel_detail(request)
            )
        model = self._model
        tokens = self.prompt_tokens(request)
        if not tokens:
            raise InputError("the prompt is empty")
        state = RequestState(
            prompt_tokens=len(tokens),
            budget=token_budget(
                len(tokens), model.context_length, request.max_tokens, request.max_length
            ),
            token_bytes=model.token_bytes,
            stops=request.stop,
            context_length=model.context_length,
            submitted_at=generation.submitted_at,
        )
        if state.is_finished:  # a zero budget: nothing to evaluate
            return state.result()
        with model.new_sampler(request.sampling) as sampler:
            with model.abort.armed([request.cancel], lambda: self._closed):
                cached = model.prefill(tokens, is_cancelled=lambda: request.cancel.is_cancelled)
            state.start_decoding(cached_tokens=cached)
            sampler.prime(tokens)
            while not state.is_finished:
                if request.cancel.is_cancelled:
                    generation.post_delta_if_any(state.cancel(self._cancel_detail(request)))
                    break
                token = model.sample(sampler)
                delta = state.append_token(token, is_eog=model.is_eog(token))
                # Hand the text over before decoding the next token: that is the latency.
                if not generation.post_delta_if_any(delta):
                    return None  # the event loop is gone: nobody is listening
                if not state.is_finished:
                    model.decode(token)
        return state.result()

    def _cancel_detail(self, request: GenerationRequest) -> str | None:
        return "the engine was closed" if self._closed else request.cancel.reason


def validate_request(request: GenerationRequest) -> None:
    # These are programming errors in the caller (the tasks layer), not user input.
    if (request.prompt is None) == (request.messages is None):
        raise ValueError("a GenerationRequest needs exactly one of prompt and messages")
    if request.max_tokens is not None and request.max_tokens < 0:
        raise ValueError(f"max_tokens must be ≥ 0, got {request.max_tokens}")
    if request.max_length is not None and request.max_length < 0:
        raise ValueError(f"max_length must be ≥ 0, got {request.max_length}")
