"""Log-probabilities of the tokens of an answer (OpenAI's `logprobs`).

They are the model's own distribution: the log-softmax of its raw logits,
before the sampler chain's repeat penalty, temperature and truncation, as
OpenAI reports them. So they do not depend on the request's sampling
settings, and a greedy answer's tokens are always the most likely ones.
(llama-server can report the probabilities after sampling instead; those
change with the sampler and are 0 for every token top-k or top-p cut.)

Only the answer's tokens have entries: a reasoning block's tokens are not
part of the answer any more than its text is. An entry goes out with the
text its token produced (`LogprobTrail`), so the entries of a stream's
deltas add up to the result's, and a token whose text never goes out (a
stop sequence's, a character cut at the end) has none.

Only requests that ask pay for it: reading a row of logits (the vocabulary's
size in floats) and a log-softmax over it, per token.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# The most alternatives a request may ask for per token (OpenAI's chat limit).
MAX_TOP_LOGPROBS = 20
# What OpenAI reports for a token the model rules out (-inf is not JSON).
MIN_LOGPROB = -9999.0


@dataclass(frozen=True)
class TokenChoice:
    """A token, as its raw bytes (maybe part of a character), and its log-probability."""

    bytes: bytes
    logprob: float


@dataclass(frozen=True)
class TokenLogprob(TokenChoice):
    """A sampled token, and the most likely tokens at its place (most likely first)."""

    top: tuple[TokenChoice, ...] = ()


def token_logprob(
    logits: np.ndarray, token: int, top: int, token_bytes: Callable[[int], bytes]
) -> TokenLogprob:
    """The entry of `token`, sampled from `logits` (one row, the vocabulary's
    size), with the `top` most likely tokens."""
    # log-softmax without a float64 copy of the row: subtract the largest
    # logit, so the exponentials cannot overflow; sum them in float64.
    largest = float(np.max(logits))
    log_total = largest + math.log(float(np.sum(np.exp(logits - largest), dtype=np.float64)))

    def choice(index: int) -> TokenChoice:
        logprob = float(logits[index]) - log_total
        return TokenChoice(token_bytes(index), max(logprob, MIN_LOGPROB))

    alternatives: tuple[TokenChoice, ...] = ()
    if top > 0:
        # The order of the logits is the order of the probabilities.
        count = min(top, len(logits))
        candidates = np.argpartition(logits, len(logits) - count)[len(logits) - count :]
        # Most likely first; equal ones by token id, so the order is stable.
        ordered = candidates[np.lexsort((candidates, -logits[candidates]))]
        alternatives = tuple(choice(int(index)) for index in ordered)
    sampled = choice(token)
    return TokenLogprob(sampled.bytes, sampled.logprob, alternatives)


class LogprobTrail:
    """A sequence's answer entries, handed out with the text they produced:
    an entry waits (`add`) until an answer delta takes it (`take`), and is
    dropped when its token's text turns out to be reasoning (`drop`)."""

    def __init__(self) -> None:
        self.taken: list[TokenLogprob] = []
        self._waiting: list[TokenLogprob] = []

    def add(self, entry: TokenLogprob) -> None:
        self._waiting.append(entry)

    def take(self) -> tuple[TokenLogprob, ...]:
        """The entries of the text going out now (maybe none)."""
        entries = tuple(self._waiting)
        self.taken.extend(entries)
        self._waiting.clear()
        return entries

    def drop(self) -> None:
        self._waiting.clear()
