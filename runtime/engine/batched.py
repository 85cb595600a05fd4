"""The engine: one loaded model, many requests decoded together (continuous
batching; `parallel: 1` is the same engine with one slot).

Three threads. The event loop only submits requests and reads deltas. The
intake thread renders each request's prompt (chat template), tokenizes it and
checks its budget, in submission order, then queues the ready sequence: that
work is Python and llama.cpp's tokenizer, kept off the loop, and it overlaps
the worker's decode instead of delaying a step. The worker thread runs the
step loop: the scheduler plans a batch, the backend evaluates it in one
`llama_decode`, and each sequence due a token samples it with its own chain.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from runtime.engine.budget import token_budget
from runtime.engine.gbnf import dead_end
from runtime.engine.llama.backend import Backend, DecodeError
from runtime.engine.llama.chat_template import ChatTemplate, prompt_text
from runtime.engine.llama.grammar import DeadEnd
from runtime.engine.llama.sampler import Sampler
from runtime.engine.logprobs import MAX_TOP_LOGPROBS
from runtime.engine.placement import KVPlacement
from runtime.engine.reasoning import FORCED_CLOSE, ends_inside_block
from runtime.engine.scheduler import Batch, Scheduler
from runtime.engine.sequence import Sequence
from runtime.engine.types import EngineStats, GenerationRequest, ModelInfo, ModelSpec
from runtime.errors import InputError, ModelComposeError, RuntimeFailure

logger = logging.getLogger(__name__)

CLOSED = "the engine was closed"


class BatchedEngine:
    """Implements the `Engine` protocol over a `Backend`."""

    def __init__(self, backend: Backend, *, max_queue: int = 64) -> None:
        self.model = backend  # the llama.cpp handles (worker thread only, but the vocabulary)
        self.chat_template = ChatTemplate(
            backend.chat_template,
            bos_token=backend.special.bos_text,
            eos_token=backend.special.eos_text,
        )
        self.scheduler = Scheduler(
            placement=KVPlacement(backend, backend.num_slots, pool=backend.kv_pool),
            max_queue=max_queue,
            max_batch_tokens=backend.n_batch,
        )
        self.steps = 0  # batches decoded so far
        self._close_tokens = backend.encode_piece(FORCED_CLOSE)
        name = backend.info.name
        self._intake = ThreadPoolExecutor(1, thread_name_prefix=f"llama-intake:{name}")
        self._thread = threading.Thread(target=self._work, name=f"llama-worker:{name}", daemon=True)
        self._thread.start()

    @classmethod
    def load(cls, spec: ModelSpec) -> BatchedEngine:
        """Load the model and start the worker (blocking; run it in a thread)."""
        return cls(Backend.load(spec), max_queue=spec.max_queue)

    @property
    def info(self) -> ModelInfo:
        return self.model.info

    @property
    def max_queue(self) -> int:
        return self.scheduler.max_queue

    @max_queue.setter
    def max_queue(self, value: int) -> None:
        self.scheduler.max_queue = value

    @property
    def worker_thread_id(self) -> int | None:
        """The thread that runs every llama.cpp context call for this engine."""
        return self._thread.ident

    def submit(self, request: GenerationRequest) -> Sequence:
        """Queue a request; returns at once. Call it on the event loop thread.

        `QueueFullError` when every slot is busy and `max_queue` requests wait.
        """
        validate_request(request)
        if self.scheduler.is_closed:
            raise RuntimeFailure(f"the engine for {self.info.name} is closed")
        self.scheduler.reserve()
        seq = Sequence(request, asyncio.get_running_loop())
        try:
            self._intake.submit(self._prepare, seq)
        except RuntimeError as error:  # closed since the check above
            raise RuntimeFailure(f"the engine for {self.info.name} is closed") from error
        return seq

    def stats(self) -> EngineStats:
        held = list(self.scheduler.placement.slots)  # a copy: the worker replaces entries
        free = self.scheduler.placement.num_free
        return EngineStats(
            slots=len(held),
            busy=len(held) - free,
            waiting=self.scheduler.num_waiting,
            kv_cells_used=sum(seq.num_kv for seq in held if seq is not None),
        )

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The tokens the engine feeds the model for `request` (any thread)."""
        return self.model.encode(prompt_text(self.chat_template, request))

    def _prompt(self, request: GenerationRequest) -> tuple[list[int], bool]:
        """The prompt's tokens, and whether the output starts inside a
        reasoning block the prompt opened. With a zero reasoning budget, such
        a block is closed in the prompt itself."""
        text = prompt_text(self.chat_template, request)
        thinking = ends_inside_block(text)
        if thinking and request.reasoning_budget == 0:
            text, thinking = text + FORCED_CLOSE, False
        return self.model.encode(text), thinking

    def shutdown(self) -> None:
        """Blocking close: cancel what is queued or running, stop the worker,
        free the model. Idempotent."""
        self.scheduler.close()
        self._intake.shutdown(wait=True)  # what it still holds ends as cancelled
        self.model.abort.set()  # a long prompt chunk need not finish first
        self._thread.join()

    async def close(self) -> None:
        await asyncio.to_thread(self.shutdown)

    # -- intake thread --------------------------------------------------------------

    def _prepare(self, seq: Sequence) -> None:
        """Render, tokenize and budget `seq`, then queue it (or end it)."""
        try:
            if not self.scheduler.is_closed and not seq.is_cancelled:
                request = seq.request
                tokens, thinking = self._prompt(request)
                if not tokens:
                    raise InputError("the prompt is empty")
                context_length = self.model.context_length
                budget = token_budget(
                    len(tokens), context_length, request.max_tokens, request.max_length
                )
                sampler = None
                # A grammar is built (and so checked) even when nothing is to be generated.
                if budget.max_new_tokens > 0 or request.grammar is not None:
                    sampler = self.model.new_sampler(request.sampling, request.grammar)
                    sampler.prime(tokens)
                seq.prepare(
                    tokens,
                    budget,
                    token_bytes=self.model.token_bytes,
                    context_length=context_length,
                    sampler=sampler,
                    thinking=thinking,
                    close_tokens=self._close_tokens if _may_close(request) else [],
                )
        except Exception as error:
            if not isinstance(error, ModelComposeError):
                logger.exception("preparing a request failed on %s", self.info.name)
            seq.fail(_as_failure(error))
        if not self.scheduler.add(seq):
            seq.end_cancelled(CLOSED)

    # -- worker thread ----------------------------------------------------------------

    def step(self) -> None:
        """Plan a batch, decode it, sample every sequence that is due a token."""
        batch = self.scheduler.schedule()
        if batch:
            for seq, row in self._decode(batch):
                self._sample(seq, row)

    def _decode(self, batch: Batch) -> list[tuple[Sequence, int]]:
        # A prompt chunk takes long enough to be worth interrupting when its
        # request is cancelled (a one-token step just ends first); closing
        # interrupts any step.
        prefilling = [seq.request.cancel for seq, count in batch.chunks if count > 1]
        try:
            with self.model.abort.armed(prefilling, lambda: self.scheduler.is_closed):
                rows = self.model.decode(batch)
        except Exception as error:
            if isinstance(error, DecodeError) and error.aborted:
                # Not a failure: the batch runs again without what was cancelled.
                self.scheduler.rewind(batch.sequences)
                return []
            # Only this batch's sequences fail; the engine keeps serving.
            logger.exception("llama_decode failed on %s", self.info.name)
            self._fail(batch.sequences, error)
            return []
        batch.commit()
        self.steps += 1
        return rows

    def _sample(self, seq: Sequence, row: int) -> None:
        try:
            sampler: Sampler = seq.sampler  # type: ignore[assignment]
            token = self.model.sample(sampler, row, constrained=seq.is_constrained)
            is_eog = self.model.is_eog(token)
            top = seq.request.logprobs
            # Only a request that asks reads its row of logits.
            logprob = None if top is None or is_eog else self.model.logprob(row, token, top)
            seq.append(token, is_eog=is_eog, logprob=logprob)
        except DeadEnd:
            seq.fail(dead_end(seq.text))
        except Exception as error:
            logger.exception("sampling failed on %s", self.info.name)
            self._fail([seq], error)

    def _fail(self, sequences: Iterable[Sequence], error: Exception) -> None:
        self.scheduler.fail(sequences, _as_failure(error))

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
            self.model.close()


def validate_request(request: GenerationRequest) -> None:
    # These are programming errors in the caller (the tasks layer), not user input.
    if (request.prompt is None) == (request.messages is None):
        raise ValueError("a GenerationRequest needs exactly one of prompt and messages")
    if request.max_tokens is not None and request.max_tokens < 0:
        raise ValueError(f"max_tokens must be ≥ 0, got {request.max_tokens}")
    if request.max_length is not None and request.max_length < 0:
        raise ValueError(f"max_length must be ≥ 0, got {request.max_length}")
    if request.reasoning_budget is not None and request.reasoning_budget < 0:
        raise ValueError(f"reasoning_budget must be ≥ 0, got {request.reasoning_budget}")
    if request.logprobs is not None and not 0 <= request.logprobs <= MAX_TOP_LOGPROBS:
        raise ValueError(f"logprobs must be 0 to {MAX_TOP_LOGPROBS}, got {request.logprobs}")


def _may_close(request: GenerationRequest) -> bool:
    """Whether the engine may end a reasoning block itself: past a budget, or
    to get to the answer a grammar asks for."""
    return request.reasoning_budget is not None or request.grammar is not None


def _as_failure(error: Exception) -> Exception:
    """Our own errors go out as they are; anything else is a generation failure."""
    if isinstance(error, ModelComposeError):
        return error
    failure = RuntimeFailure(f"generation failed: {error}")
    failure.__cause__ = error
    return failure
