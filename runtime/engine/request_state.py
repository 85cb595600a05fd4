"""One request's decoding state: token budget, text assembly, finish reason.

Backend-free on purpose: the serial engine and the batching scheduler both
drive it the same way (feed each sampled token, post the delta it returns),
and its rules can be tested without a model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from runtime.engine.detokenize import Detokenizer, TokenBytes
from runtime.engine.stops import StopMatcher
from runtime.engine.types import Delta, FinishReason, GenerationResult, Timings, Usage
from runtime.errors import PromptTooLongError


@dataclass(frozen=True)
class TokenBudget:
    max_new_tokens: int
    # Set when the request asked for more than fits, for people to read.
    detail: str | None = None
    # True when the budget is the room left in the context, not the request's own limit.
    context_bound: bool = False


def token_budget(
    prompt_tokens: int,
    context_length: int,
    max_tokens: int | None = None,
    max_length: int | None = None,
) -> TokenBudget:
    """How many tokens a request may generate; `PromptTooLongError` if none fit."""
    if prompt_tokens >= context_length:
        raise PromptTooLongError(prompt_tokens, context_length)
    room = context_length - prompt_tokens
    wanted, asked = max_tokens, f"max output length {max_tokens}"
    if max_length is not None:
        by_length = max(max_length - prompt_tokens, 0)
        if wanted is None or by_length < wanted:
            wanted, asked = by_length, f"max_length {max_length} (prompt + output)"
            if by_length == 0:
                detail = (
                    f"the prompt ({prompt_tokens} tokens) already fills max_length {max_length}"
                )
                return TokenBudget(0, detail)
    if wanted is None:
        return TokenBudget(room, None, context_bound=True)
    if wanted > room:
        detail = (
            f"{asked} clamped to the {room} tokens left in the "
            f"{context_length}-token context (the prompt is {prompt_tokens} tokens)"
        )
        return TokenBudget(room, detail, context_bound=True)
    return TokenBudget(wanted)


class RequestState:
    """Turns sampled tokens into deltas and decides when the request is finished."""

    def __init__(
        self,
        *,
        prompt_tokens: int,
        budget: TokenBudget,
        token_bytes: TokenBytes,
        stops: tuple[str, ...] = (),
        context_length: int = 0,
        submitted_at: float | None = None,
    ) -> None:
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = 0
        self.completion_tokens = 0
        self.budget = budget
        self.context_length = context_length
        self.finish_reason: FinishReason | None = None
        self.detail = budget.detail
        self._detokenizer = Detokenizer(token_bytes)
        self._stops = StopMatcher(stops)
        self._pieces: list[str] = []
        self.submitted_at = time.perf_counter() if submitted_at is None else submitted_at
        self.decode_started_at: float | None = None
        self.first_delta_at: float | None = None
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        if budget.max_new_tokens <= 0:
            self._finish(FinishReason.LENGTH)

    @property
    def is_finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def start_decoding(self, cached_tokens: int) -> None:
        """The prompt is evaluated; token generation begins."""
        self.cached_tokens = cached_tokens
        self.decode_started_at = time.perf_counter()

    def append_token(self, token: int, *, is_eog: bool) -> Delta | None:
        """Take one sampled token; the delta to send, if it completed any text."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if is_eog:
            # End-of-generation tokens are never part of the text.
            text = self._release_tail()
            self._finish(FinishReason.STOP)
            return self._delta(text)
        self.completion_tokens += 1
        check = self._stops.feed(self._detokenizer.feed(token))
        if check.stopped:
            self._finish(FinishReason.STOP)
            return self._delta(check.text)
        text = check.text
        if self.completion_tokens >= self.budget.max_new_tokens:
            text += self._release_tail()
            if not self._stops.stopped:
                self._finish(FinishReason.LENGTH)
                if self.budget.context_bound and self.detail is None:
                    self.detail = f"stopped at the end of the {self.context_length}-token context"
            else:
                self._finish(FinishReason.STOP)
        return self._delta(text)

    def cancel(self, detail: str | None = None) -> Delta | None:
        """Stop now; the delta carries text held back so far (nothing is lost)."""
        if self.is_finished:
            return None
        text = self._release_tail()
        self._finish(FinishReason.CANCELLED)
        if detail:
            self.detail = detail
        return self._delta(text)

    def result(self) -> GenerationResult:
        end = self.finished_at or time.perf_counter()
        first = self.first_delta_at or self.first_token_at
        decode_s = end - self.decode_started_at if self.decode_started_at is not None else 0.0
        return GenerationResult(
            text=self.text,
            finish_reason=self.finish_reason or FinishReason.ERROR,
            usage=Usage(
                prompt_tokens=self.prompt_tokens,
                cached_tokens=self.cached_tokens,
                completion_tokens=self.completion_tokens,
            ),
            timings=Timings(
                ttft_s=first - self.submitted_at if first is not None else 0.0,
                total_s=end - self.submitted_at,
                tokens_per_s=self.completion_tokens / decode_s if decode_s > 0 else 0.0,
            ),
            detail=self.detail,
        )

    def _release_tail(self) -> str:
        """Text still held by the detokenizer (partial UTF-8) or the stop matcher."""
        check = self._stops.feed(self._detokenizer.flush())
        if check.stopped:
            return check.text
        return check.text + self._stops.flush()

    def _delta(self, text: str) -> Delta | None:
        if not text:
            return None
        if self.first_delta_at is None:
            self.first_delta_at = time.perf_counter()
        self._pieces.append(text)
        return Delta(text=text, num_tokens=self.completion_tokens)

    def _finish(self, reason: FinishReason) -> None:
        self.finish_reason = reason
        self.finished_at = time.perf_counter()
