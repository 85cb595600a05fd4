"""The batching engine: one loaded model, many requests decoded together.

A worker thread runs the step loop: the scheduler plans a batch (one token
per decoding sequence, then prompt chunks), the backend evaluates it in one
`llama_decode`, and each sequence whose last token was in it samples its next
token with its own sampler chain. The event loop only queues requests and
reads deltas; nothing here blocks it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable

from runtime.engine.backend import Backend, DecodeError
from runtime.engine.chat import ChatTemplate, prompt_text
from runtime.engine.generation import StreamingGeneration
from runtime.engine.request_state import RequestState, token_budget
from runtime.engine.scheduler import Batch, Scheduler
from runtime.engine.sequence import Sequence
from runtime.engine.serial import validate_request
from runtime.engine.types import EngineStats, GenerationRequest, ModelInfo, ModelSpec
from runtime.errors import InputError, ModelComposeError, RuntimeFailure

logger = logging.getLogger(__name__)

CLOSED = "the engine was closed"


class BatchedEngine:
    """Implements the `Engine` protocol with continuous batching over a `Backend`."""

    def __init__(self, backend: Backend, *, max_queue: int = 64) -> None:
        self._backend = backend
        self._chat = ChatTemplate(
            backend.chat_template,
            bos_token=backend.special.bos_text,
            eos_token=backend.special.eos_text,
        )
        self.scheduler = Scheduler(
            num_slots=backend.num_slots,
            max_queue=max_queue,
            max_batch_tokens=backend.n_batch,
            kv=backend,
            prepare=self._prepare,
        )
        self.steps = 0  # batches decoded so far
        self._thread = threading.Thread(
            target=self._work, name=f"llama-batch-worker:{backend.info.name}", daemon=True
        )
        self._thread.start()

    @classmethod
    def load(cls, spec: ModelSpec) -> BatchedEngine:
        """Load the model and start the worker (blocking; run it in a thread)."""
        return cls(Backend.load(spec), max_queue=spec.max_queue)

    @property
    def info(self) -> ModelInfo:
        return self._backend.info

    @property
    def max_queue(self) -> int:
        return self.scheduler.max_queue

    @max_queue.setter
    def max_queue(self, value: int) -> None:
        self.scheduler.max_queue = value

    @property
    def model(self) -> Backend:
        return self._backend

    @property
    def chat_template(self) -> ChatTemplate:
        return self._chat

    @property
    def worker_thread_id(self) -> int | None:
        """The thread that runs every llama.cpp call for this engine."""
        return self._thread.ident

    def submit(self, request: GenerationRequest) -> StreamingGeneration:
        """Queue a request; returns at once. Call it on the event loop thread.

        `QueueFullError` when every slot is busy and `max_queue` requests wait.
        """
        validate_request(request)
        if self.scheduler.is_closed:
            raise RuntimeFailure(f"the engine for {self.info.name} is closed")
        generation = StreamingGeneration(request, asyncio.get_running_loop())
        self.scheduler.add(Sequence(request, generation, submitted_at=generation.submitted_at))
        return generation

    def stats(self) -> EngineStats:
        scheduler = self.scheduler
        free = scheduler.num_free_slots
        return EngineStats(
            slots=len(scheduler.slots),
            busy=len(scheduler.slots) - free,
            waiting=len(scheduler.waiting),
        )

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The tokens the engine feeds the model for `request` (see SerialEngine)."""
        return self._backend.encode(prompt_text(self._chat, request))

    def shutdown(self) -> None:
        """Blocking close: cancel what is queued or running, stop the worker,
        free the model. Idempotent."""
        self.scheduler.close()
        self._backend.abort.set()  # a long prompt chunk need not finish first
        self._thread.join()

    async def close(self) -> None:
        await asyncio.to_thread(self.shutdown)

    # -- worker thread ----------------------------------------------------------

    def step(self) -> None:
        """Plan a batch, decode it, sample every sequence that is due a token."""
        batch = self.scheduler.schedule()
        if batch and self._decode(batch):
            for seq in batch.sampling:
                self._sample(seq)

    def _decode(self, batch: Batch) -> bool:
        # A prompt chunk takes long enough to be worth interrupting when its
        # request is cancelled (a one-token step just ends first); closing
        # interrupts any step.
        prefilling = [seq.request.cancel for seq, count in batch.chunks if count > 1]
        try:
            with self._backend.abort.armed(prefilling, lambda: self.scheduler.is_closed):
                self._backend.decode(batch)
        except Exception as error:
            if isinstance(error, DecodeError) and error.aborted:
                # Not a failure: the batch runs again without what was cancelled.
                self.scheduler.rewind(batch_sequences(batch))
                return False
            # Only this batch's sequences fail; the engine keeps serving.
            logger.exception("llama_decode failed on %s", self.info.name)
            self._fail(batch_sequences(batch), error)
            return False
        batch.commit()
        self.steps += 1
        return True

    def _sample(self, seq: Sequence) -> None:
        try:
            token = self._backend.sample(seq)
            seq.append(token, is_eog=self._backend.is_eog(token))
        except Exception as error:
            logger.exception("sampling failed on %s", self.info.name)
            self._fail([seq], error)

    def _fail(self, sequences: Iterable[Sequence], error: Exception) -> None:
        if not isinstance(error, ModelComposeError):
            failure = RuntimeFailure(f"generation failed: {error}")
            failure.__cause__ = error
            error = failure
        self.scheduler.fail(sequences, error)

    def _prepare(self, seq: Sequence) -> None:
        """Tokenize and budget a sequence about to take a slot (or end it)."""
        request = seq.request
        try:
            tokens = self.prompt_tokens(request)
            if not tokens:
                raise InputError("the prompt is empty")
            context_length = self._backend.context_length
            state = RequestState(
                prompt_tokens=len(tokens),
                budget=token_budget(
                    len(tokens), context_length, request.max_tokens, request.max_length
                ),
                token_bytes=self._backend.token_bytes,
                stops=request.stop,
                context_length=context_length,
                submitted_at=seq.submitted_at,
            )
            if state.is_finished:  # a zero budget: nothing to evaluate
                seq.start(tokens, state, None)
                seq.finish()
                return
            sampler = self._backend.new_sampler(request.sampling)
            sampler.prime(tokens)
            seq.start(tokens, state, sampler)
        except Exception as error:
            if not isinstance(error, ModelComposeError):
                logger.exception("preparing a request failed on %s", self.info.name)
            self._fail([seq], error)

    def _work(self) -> None:
        scheduler = self.scheduler
        try:
            while not scheduler.is_closed:
                scheduler.wait_for_work()
                try:
                    self.step()
                except Exception as error:  # a bug: fail what runs, keep serving
                    logger.exception("a batching step failed on %s", self.info.name)
                    self._fail(list(scheduler.running), error)
        finally:
            scheduler.drain(CLOSED)
            self._backend.close()


def batch_sequences(batch: Batch) -> list[Sequence]:
    return [seq for seq, _ in batch.chunks]
