"""Build a llama.cpp sampler chain from `SamplingParams`.

One chain per request (each sequence samples its own row of one batch's
logits): the chain carries the request's RNG state and repeat-penalty
history, so it must never be shared between requests. A request with a
grammar has one of its own next to the chain (see `grammar`), which rules
only the tokens sampled with `constrained=True`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence

import llama_cpp

from runtime.engine.llama.grammar import Candidates, DeadEnd, Grammar
from runtime.engine.sampling_defaults import SAMPLERS
from runtime.engine.types import SamplingParams

# How many recent tokens the repeat penalty looks at (llama-cpp-python's default).
REPEAT_LAST_N = 64
# Mirostat 1's estimation window (llama.cpp's default `m`).
MIROSTAT_M = 100


class Sampler:
    """An owned llama.cpp sampler chain; `close()` frees it."""

    def __init__(
        self,
        params: SamplingParams,
        n_vocab: int,
        grammar: Grammar | None = None,
        tokenize: Callable[[str], list[int]] | None = None,
    ) -> None:
        """`params` with every sampler set: the backend fills the unset ones
        with its model's defaults (`sampling_defaults.fill_unset`). The
        sampler owns `grammar`; `tokenize` (text → tokens, no BOS) lets the
        grammar take text the model wrote before it ruled (`constrain_text`)."""
        unset = [name for name in SAMPLERS if getattr(params, name) is None]
        if unset:
            raise ValueError(f"sampler settings left unset: {', '.join(unset)}")
        self.params = params
        self.grammar = grammar
        self._tokenize = tokenize
        self._candidates = Candidates(n_vocab) if grammar is not None else None
        self._chain = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        for stage in _stages(params, n_vocab):
            # The chain takes ownership of each stage and frees it with itself.
            llama_cpp.llama_sampler_chain_add(self._chain, stage)

    @property
    def uses_history(self) -> bool:
        return self.params.repeat_penalty != 1.0

    def prime(self, prompt_tokens: Sequence[int]) -> None:
        """Let the repeat penalty see the end of the prompt, as transformers does."""
        if self.uses_history:
            for token in prompt_tokens[-REPEAT_LAST_N:]:
                llama_cpp.llama_sampler_accept(self._chain, token)

    def accept(self, token: int) -> None:
        """A token the engine wrote itself (not sampled): the chain's history
        sees it as if it had been."""
        if self._chain is not None:
            llama_cpp.llama_sampler_accept(self._chain, token)

    def sample(
        self, ctx: llama_cpp.llama_context_p, idx: int = -1, *, constrained: bool = False
    ) -> int:
        """Sample from the logits of output `idx` of the last decode, and
        accept it; `constrained`: a token the grammar (if any) allows, or
        `DeadEnd` when it allows none."""
        if self._chain is None:
            raise RuntimeError("sampler is closed")
        if self.grammar is None or not constrained:
            return int(llama_cpp.llama_sampler_sample(self._chain, ctx, idx))
        return self._sample_constrained(self._chain, self.grammar, ctx, idx)

    def _sample_constrained(
        self,
        chain: llama_cpp.llama_sampler_p,
        grammar: Grammar,
        ctx: llama_cpp.llama_context_p,
        idx: int,
    ) -> int:
        # llama.cpp's common sampler does the same: the chain first, the
        # grammar on the whole vocabulary only if it refuses that token.
        candidates: Candidates = self._candidates  # type: ignore[assignment]
        candidates.fill(ctx, idx)
        llama_cpp.llama_sampler_apply(chain, ctypes.byref(candidates.array))
        token = candidates.selected
        if not grammar.allows(token):
            candidates.fill(ctx, idx)
            grammar.restrict(candidates)
            llama_cpp.llama_sampler_apply(chain, ctypes.byref(candidates.array))
            # A sampler may land on a ruled-out token when nearly everything is
            # (the dist sampler's draw of exactly 0): take the likeliest left.
            if candidates.selected_is_allowed():
                token = candidates.selected
            else:
                token = candidates.best_allowed()
        grammar.accept(token)
        llama_cpp.llama_sampler_accept(chain, token)
        return token

    def constrain_text(self, text: str) -> None:
        """The model wrote `text` before the grammar started ruling (in the
        token that closed its reasoning): the grammar takes it as the start
        of the answer, or `DeadEnd` when it does not allow it."""
        if self.grammar is None or not text or self._tokenize is None:
            return
        for token in self._tokenize(text):
            if not self.grammar.allows(token):
                raise DeadEnd
            self.grammar.accept(token)

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
        if self.grammar is not None:
            self.grammar.close()
            self.grammar = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def seed_value(seed: int | None) -> int:
    """llama.cpp's seed: None → a random one each time; otherwise 32 bits of it."""
    if seed is None:
        return llama_cpp.LLAMA_DEFAULT_SEED
    return seed & 0xFFFFFFFF


def _stages(params: SamplingParams, n_vocab: int) -> list[llama_cpp.llama_sampler_p]:
    stages = []
    # The repeat penalty changes logits, not the choice rule, so it applies to
    # greedy decoding too (as transformers' repetition_penalty does).
    if params.repeat_penalty != 1.0:
        stages.append(
            llama_cpp.llama_sampler_init_penalties(
                n_vocab, REPEAT_LAST_N, params.repeat_penalty, 0.0, 0.0
            )
        )
    if params.greedy or params.temperature == 0.0:
        stages.append(llama_cpp.llama_sampler_init_greedy())
        return stages
    if params.mirostat:
        # As llama.cpp's common sampler: temperature, then Mirostat picks the token.
        seed = seed_value(params.seed)
        if params.temperature > 0.0:
            stages.append(llama_cpp.llama_sampler_init_temp(params.temperature))
        if params.mirostat == 1:
            stages.append(
                llama_cpp.llama_sampler_init_mirostat(
                    n_vocab, seed, params.mirostat_tau, params.mirostat_eta, MIROSTAT_M
                )
            )
        else:
            stages.append(
                llama_cpp.llama_sampler_init_mirostat_v2(
                    seed, params.mirostat_tau, params.mirostat_eta
                )
            )
        return stages
    if params.temperature > 0.0:
        # llama.cpp's usual order: truncate the distribution, then temperature.
        if params.top_k > 0:
            stages.append(llama_cpp.llama_sampler_init_top_k(params.top_k))
        if 0.0 < params.top_p < 1.0:
            stages.append(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            stages.append(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
        stages.append(llama_cpp.llama_sampler_init_temp(params.temperature))
    # A negative temperature samples the raw distribution (llama-cpp-python's rule).
    stages.append(llama_cpp.llama_sampler_init_dist(seed_value(params.seed)))
    return stages
