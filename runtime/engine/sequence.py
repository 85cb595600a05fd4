"""One request from submit to result, as nano-vllm's `Sequence`: its tokens,
status, token budget, timings, stop matching, the split of its reasoning from
its answer (and the reasoning budget), and the delivery of its deltas and
result to the event loop. It is also the `Generation` that `submit`
returns: the caller iterates it and awaits `result()`.

Threads. Created on the event loop thread; prepared (`prepare`) by the
engine's intake thread before the scheduler sees it; then updated only by the
worker thread. Deltas and the result cross to the loop with
`loop.call_soon_threadsafe`, which keeps them in order. Deltas queue without
bound: a generation holds at most `max_tokens` small strings, and dropping one
would corrupt the text.

Its tokens stay readable after it finishes: the slot it used still holds
their KV cache, which the next request with the same prefix reuses.
"""

from __future__ import annotations

import asyncio
import enum
import time
from typing import TYPE_CHECKING

from runtime.engine.budget import TokenBudget
from runtime.engine.detokenize import Detokenizer, TokenBytes
from runtime.engine.logprobs import LogprobTrail, TokenLogprob
from runtime.engine.reasoning import ReasoningSplitter
from runtime.engine.stops import StopMatcher
from runtime.engine.types import (
    Delta,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    Timings,
    Usage,
)

if TYPE_CHECKING:
    from runtime.engine.llama.sampler import Sampler


class SequenceStatus(enum.Enum):
    WAITING = "waiting"  # queued, no slot yet
    PREFILL = "prefill"  # in a slot, prompt tokens still to evaluate
    DECODE = "decode"  # generating: one token per step
    FINISHED = "finished"


_END = None  # queued after the last delta


class Sequence:
    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.status = SequenceStatus.WAITING
        self.submitted_at = time.perf_counter()
        # Set by `prepare`:
        self.tokens: list[int] = []  # prompt, then every sampled token
        self.num_prompt_tokens = 0
        self.budget = TokenBudget(0)
        self.context_length = 0
        self.sampler: Sampler | None = None
        self._detokenizer: Detokenizer | None = None
        self._stops = StopMatcher(request.stop)
        self._split = ReasoningSplitter()
        self._logprobs = LogprobTrail() if request.logprobs is not None else None
        # The tokens that end a reasoning block that ran past its budget.
        self._close_tokens: list[int] = []
        # Where its KV cache is (set by `KVPlacement`): positions 0..num_kv-1 of `slot`.
        self.slot: int | None = None
        self.num_kv = 0
        self.num_cached = 0  # prompt tokens found in the KV cache at admission
        # How it went:
        self.num_completion_tokens = 0
        self.num_reasoning_tokens = 0
        self.finish_reason: FinishReason | None = None
        self.detail: str | None = None
        self._pieces: list[str] = []  # the answer
        self._reasoning: list[str] = []
        self.decode_started_at: float | None = None
        self.first_token_at: float | None = None
        self.first_delta_at: float | None = None
        self.finished_at: float | None = None
        # Delivery (the loop's side):
        self._loop = loop
        self._deltas: asyncio.Queue[Delta | None] = asyncio.Queue()
        self._result: asyncio.Future[GenerationResult] = loop.create_future()
        # The error is raised by iteration and by result(); a caller that uses
        # only one of them must not get "exception was never retrieved" noise.
        self._result.add_done_callback(_observe)
        self._ended = False
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

    @property
    def is_constrained(self) -> bool:
        """The next token is the answer's, which the request's grammar (if
        any) rules: never a token of the reasoning."""
        return not self._split.is_thinking

    @property
    def text(self) -> str:
        """The answer so far (never the reasoning)."""
        return "".join(self._pieces)

    @property
    def reasoning(self) -> str | None:
        """The reasoning so far; None when no block was opened."""
        return "".join(self._reasoning) if self._split.opened else None

    # -- the consumer (event loop) -------------------------------------------------

    def __aiter__(self) -> Sequence:
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
        """The final result (whether or not the deltas were read). Cancelling
        the caller does not cancel the generation; use `cancel()`."""
        return await asyncio.shield(self._result)

    def cancel(self) -> None:
        self.request.cancel.cancel()

    def done(self) -> bool:
        return self._result.done()

    # -- the intake thread ----------------------------------------------------------

    def prepare(
        self,
        prompt: list[int],
        budget: TokenBudget,
        *,
        token_bytes: TokenBytes,
        context_length: int,
        sampler: Sampler | None,
        thinking: bool = False,
        close_tokens: list[int] | None = None,
    ) -> None:
        """Tokenized and budgeted: ready for a slot (or finished: nothing to
        generate). `thinking`: the prompt leaves a reasoning block open;
        `close_tokens` end a block past the request's reasoning budget."""
        self.tokens = list(prompt)
        self.num_prompt_tokens = len(prompt)
        self.budget, self.detail = budget, budget.detail
        self.context_length = context_length
        self.sampler = sampler
        self._detokenizer = Detokenizer(token_bytes)
        # A grammar rules the answer: with no block open, no block may open.
        self._split = ReasoningSplitter(
            thinking=thinking, answering=self.request.grammar is not None
        )
        self._close_tokens = list(close_tokens or [])
        if budget.max_new_tokens <= 0:
            self._finish(FinishReason.LENGTH)

    # -- the worker thread ------------------------------------------------------------

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
            if self.decode_started_at is None:  # not again after a `rewind`
                self.decode_started_at = time.perf_counter()

    def rewind(self, num_kv: int) -> None:
        """The slot's KV cache holds only the first `num_kv` tokens again: the
        rest (generated ones included) are evaluated again before the next
        token is sampled."""
        self.num_kv = num_kv
        if self.status is SequenceStatus.DECODE and self.num_pending > 1:
            self.status = SequenceStatus.PREFILL

    def append(self, token: int, *, is_eog: bool, logprob: TokenLogprob | None = None) -> None:
        """Take a sampled token (and its log-probability, when the request
        asks): post the text it completes; finish at an end-of-generation
        token, a stop sequence, or the end of the budget."""
        if is_eog and self._must_answer():
            # A grammar asks for an answer: an end inside the reasoning closes it instead.
            self._force(self._close_tokens)
            return
        self.tokens.append(token)
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if is_eog:  # end-of-generation tokens are never part of the text
            self._emit(self._release_tail(), last=True)
            self._finish(FinishReason.STOP)
            return
        self.num_completion_tokens += 1
        if self._logprobs is not None and logprob is not None:
            self._logprobs.add(logprob)
        was_thinking = self._split.is_thinking
        check = self._stops.feed(self._detokenizer.feed(token))  # type: ignore[union-attr]
        if check.stopped:
            self._emit(check.text, last=True)
            self._finish(FinishReason.STOP)
        elif self.num_completion_tokens >= self.budget.max_new_tokens:
            self._emit(check.text + self._release_tail(), last=True)
            if self._stops.stopped:
                self._finish(FinishReason.STOP)
                return
            if self.budget.context_bound and self.detail is None:
                self.detail = f"stopped at the end of the {self.context_length}-token context"
            self._finish(FinishReason.LENGTH)
        else:
            self._emit(check.text)
        is_reasoning = was_thinking or self._split.is_thinking
        if is_reasoning:
            self.num_reasoning_tokens += 1
        if self._logprobs is not None and (is_reasoning or not self._holds_text()):
            self._logprobs.drop()  # its text is reasoning, or went nowhere (space after a block)
        if was_thinking and not self._split.is_thinking and self.sampler is not None:
            # The answer may have started in the token that closed the block.
            self.sampler.constrain_text(self.text)
        if not self.is_finished and self._over_reasoning_budget():
            self._force(self._close_tokens)

    def _over_reasoning_budget(self) -> bool:
        budget = self.request.reasoning_budget
        return (
            budget is not None and self.num_reasoning_tokens >= budget and self._can_close_block()
        )

    def _must_answer(self) -> bool:
        return self.request.grammar is not None and self._can_close_block()

    def _can_close_block(self) -> bool:
        return (
            self._split.is_thinking
            and bool(self._close_tokens)
            # Room for the closing tokens and at least one token of answer.
            and self.num_completion_tokens + len(self._close_tokens) < self.budget.max_new_tokens
        )

    def _force(self, tokens: list[int]) -> None:
        """Write `tokens` as if the model had: they are evaluated (one prompt
        chunk) before the next token is sampled."""
        for token in tokens:
            self.tokens.append(token)
            self.num_completion_tokens += 1
            self.num_reasoning_tokens += 1
            if self.sampler is not None:
                self.sampler.accept(token)
            self._emit(self._stops.feed(self._detokenizer.feed(token)).text)  # type: ignore[union-attr]
        self.status = SequenceStatus.PREFILL

    def end_cancelled(self, detail: str | None = None) -> None:
        """End now as cancelled; text held back so far is still delivered."""
        if self.is_finished:
            return
        self._emit(self._release_tail(), last=True)
        if detail:
            self.detail = detail
        self._finish(FinishReason.CANCELLED)

    def fail(self, error: BaseException) -> None:
        if self.is_finished:
            return
        self.status = SequenceStatus.FINISHED
        self._close_sampler()
        self._post(self._settle, None, error)

    def result_now(self) -> GenerationResult:
        """The result as it stands (final once finished)."""
        end = self.finished_at or time.perf_counter()
        first = self.first_delta_at or self.first_token_at
        started = self.decode_started_at
        decode_s = end - started if started is not None else 0.0
        return GenerationResult(
            text=self.text,
            finish_reason=self.finish_reason or FinishReason.ERROR,
            usage=Usage(
                self.num_prompt_tokens,
                self.num_cached,
                self.num_completion_tokens,
                self.num_reasoning_tokens,
            ),
            timings=Timings(
                ttft_s=first - self.submitted_at if first is not None else 0.0,
                total_s=end - self.submitted_at,
                tokens_per_s=self.num_completion_tokens / decode_s if decode_s > 0 else 0.0,
            ),
            detail=self.detail,
            reasoning=self.reasoning,
            logprobs=tuple(self._logprobs.taken) if self._logprobs is not None else None,
        )

    def _release_tail(self) -> str:
        """Text still held by the detokenizer (partial UTF-8) or the stop matcher."""
        if self._detokenizer is None:  # never prepared: no text at all
            return ""
        check = self._stops.feed(self._detokenizer.flush())
        return check.text if check.stopped else check.text + self._stops.flush()

    def _emit(self, text: str, *, last: bool = False) -> None:
        """Post generated text, split into reasoning and answer; `last`: the
        output ends here (the splitter lets go of what it held back)."""
        pieces = self._split.feed(text) if text else []
        if last:
            pieces += self._split.flush()
        for piece in pieces:
            if self.first_delta_at is None:
                self.first_delta_at = time.perf_counter()
            (self._reasoning if piece.reasoning else self._pieces).append(piece.text)
            delta = Delta(
                piece.text,
                self.num_completion_tokens,
                reasoning=piece.reasoning,
                logprobs=self._logprobs_of(piece.reasoning),
            )
            if not self._post(self._deltas.put_nowait, delta):
                self._orphaned = True  # nobody listens: free the slot at the next step

    def _holds_text(self) -> bool:
        """Whether text is held back (a partial character, what may be a stop
        sequence or a tag): the entries of its tokens wait for it."""
        detokenizer = self._detokenizer
        held_bytes = detokenizer is not None and detokenizer.pending_bytes
        return bool(held_bytes or self._stops.held or self._split.held)

    def _logprobs_of(self, reasoning: bool) -> tuple[TokenLogprob, ...]:
        """The entries of the tokens whose text goes out now: none for reasoning."""
        if self._logprobs is None:
            return ()
        if reasoning:
            self._logprobs.drop()
            return ()
        return self._logprobs.take()

    def _finish(self, reason: FinishReason) -> None:
        self.finish_reason = reason
        self.finished_at = time.perf_counter()
        self.status = SequenceStatus.FINISHED
        self._close_sampler()
        self._post(self._settle, self.result_now(), None)

    def _close_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.close()
            self.sampler = None

    def _post(self, callback: object, *args: object) -> bool:
        """Run `callback` on the loop; False when the loop is closed (nobody listens)."""
        try:
            self._loop.call_soon_threadsafe(callback, *args)  # type: ignore[arg-type]
        except RuntimeError:
            return False
        return True

    def _settle(self, result: GenerationResult | None, error: BaseException | None) -> None:
        if self._result.done():
            return
        if error is not None:
            self._result.set_exception(error)
        else:
            self._result.set_result(result)  # type: ignore[arg-type]
        self._deltas.put_nowait(_END)

    def __repr__(self) -> str:
        return (
            f"Sequence({self.status.value}, slot={self.slot}, tokens={len(self.tokens)}, "
            f"kv={self.num_kv})"
        )


def _observe(future: asyncio.Future[GenerationResult]) -> None:
    if not future.cancelled():
        future.exception()
