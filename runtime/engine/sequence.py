"""One request inside the batching engine: its tokens, where they are in the
KV cache, its status, and where its text goes.

A `Sequence` owns its state; the scheduler only moves it between queues and
slots, the backend only reads its tokens and writes its batch index. Its
tokens stay readable after it finishes: the slot it used still holds their KV
cache, which the next request with the same prefix reuses.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING, Protocol

from runtime.engine.types import Delta, FinishReason, GenerationRequest, GenerationResult

if TYPE_CHECKING:
    from runtime.engine.request_state import RequestState
    from runtime.engine.sampling import Sampler


class SequenceStatus(enum.Enum):
    WAITING = "waiting"  # queued, no slot yet
    PREFILL = "prefill"  # in a slot, prompt tokens still to evaluate
    DECODE = "decode"  # generating: one token per step
    FINISHED = "finished"


class Output(Protocol):
    """Where a sequence's deltas and result go (`generation.StreamingGeneration`).
    Each method returns False when nobody listens any more."""

    def post_delta(self, delta: Delta) -> bool: ...

    def post_result(self, result: GenerationResult) -> bool: ...

    def post_error(self, error: BaseException) -> bool: ...


class Sequence:
    def __init__(
        self, request: GenerationRequest, output: Output, *, submitted_at: float | None = None
    ) -> None:
        self.request = request
        self.output = output
        self.submitted_at = time.perf_counter() if submitted_at is None else submitted_at
        self.status = SequenceStatus.WAITING
        # Set when admitted (on the worker thread, which tokenizes):
        self.tokens: list[int] = []  # prompt, then every sampled token
        self.num_prompt_tokens = 0
        self.state: RequestState | None = None
        self.sampler: Sampler | None = None
        self.slot: int | None = None
        # How many of `tokens` are in the slot's KV cache (positions 0..num_kv-1).
        self.num_kv = 0
        # How many prompt tokens were found in the KV cache at admission.
        self.num_cached = 0
        # Where this sequence's logits are in the batch just decoded.
        self.batch_index = -1
        self._orphaned = False  # the consumer's event loop is gone

    # -- reading ----------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    @property
    def is_cancelled(self) -> bool:
        return self.request.cancel.is_cancelled or self._orphaned

    @property
    def num_pending(self) -> int:
        """Tokens to evaluate before the next one can be sampled."""
        return len(self.tokens) - self.num_kv

    # -- the worker thread's updates ---------------------------------------------

    def start(self, prompt: list[int], state: RequestState, sampler: Sampler | None) -> None:
        """The request is tokenized and budgeted; it may now take a slot."""
        self.tokens = list(prompt)
        self.num_prompt_tokens = len(prompt)
        self.state = state
        self.sampler = sampler

    def place(self, slot: int, num_cached: int) -> None:
        """Admitted into `slot`, whose KV cache already holds `num_cached` prompt tokens."""
        self.slot = slot
        self.num_cached = self.num_kv = num_cached
        self.status = SequenceStatus.PREFILL

    def advance(self, count: int) -> None:
        """`count` more tokens were evaluated into the KV cache."""
        self.num_kv += count
        if self.status is SequenceStatus.PREFILL and self.num_kv == len(self.tokens):
            self.status = SequenceStatus.DECODE
            assert self.state is not None
            if self.state.decode_started_at is None:  # not again after a `rewind`
                self.state.start_decoding(cached_tokens=self.num_cached)

    def forget_kv(self) -> None:
        """The slot's KV cache was cleared (after a failed decode)."""
        self.num_kv = 0

    def rewind(self, num_kv: int) -> None:
        """The slot's KV cache holds only the first `num_kv` tokens again: the
        rest (generated ones included) are evaluated again before the next
        token is sampled."""
        self.num_kv = num_kv
        if self.status is SequenceStatus.DECODE and self.num_pending > 1:
            self.status = SequenceStatus.PREFILL

    def append(self, token: int, *, is_eog: bool) -> None:
        """Take a sampled token: post the text it completes; finished when the
        request state says so (stop, length, end of generation)."""
        assert self.state is not None
        self.tokens.append(token)
        delta = self.state.append_token(token, is_eog=is_eog)
        if delta is not None and not self.output.post_delta(delta):
            self._orphaned = True  # nobody listens: free the slot at the next step
        if self.state.is_finished:
            self.finish()

    def finish(self) -> None:
        """Post the result (the request state says how it ended) and let go of the sampler."""
        if self.is_finished:
            return
        self.status = SequenceStatus.FINISHED
        self._close_sampler()
        if self.state is not None:
            self.output.post_result(self.state.result())

    def cancel(self, detail: str | None = None) -> None:
        """End now as cancelled; text held back so far is still delivered."""
        if self.is_finished:
            return
        if self.state is None:  # never started: no model work at all
            self.status = SequenceStatus.FINISHED
            self.output.post_result(
                GenerationResult(text="", finish_reason=FinishReason.CANCELLED, detail=detail)
            )
            return
        delta = self.state.cancel(detail)
        if delta is not None:
            self.output.post_delta(delta)
        self.finish()

    def fail(self, error: BaseException) -> None:
        if self.is_finished:
            return
        self.status = SequenceStatus.FINISHED
        self._close_sampler()
        self.output.post_error(error)

    def _close_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None

    def __repr__(self) -> str:
        return (
            f"Sequence({self.status.value}, slot={self.slot}, tokens={len(self.tokens)}, "
            f"kv={self.num_kv})"
        )
