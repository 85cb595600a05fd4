"""Build a llama.cpp sampler chain from `SamplingParams`.

One chain per request (each sequence samples its own row of one batch's
logits): the chain carries the request's RNG state and repeat-penalty
history, so it must never be shared between requests.
"""

from __future__ import annotations

from collections.abc import Sequence

import llama_cpp

from runtime.engine.sampling_defaults import SAMPLERS
from runtime.engine.types import SamplingParams

# How many recent tokens the repeat penalty looks at (llama-cpp-python's default).
REPEAT_LAST_N = 64


class Sampler:
    """An owned llama.cpp sampler chain; `close()` frees it."""

    def __init__(self, params: SamplingParams, n_vocab: int) -> None:
        """`params` with every sampler set: the backend fills the unset ones
        with its model's defaults (`sampling_defaults.fill_unset`)."""
        unset = [name for name in SAMPLERS if getattr(params, name) is None]
        if unset:
            raise ValueError(f"sampler settings left unset: {', '.join(unset)}")
        self.params = params
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

    def sample(self, ctx: llama_cpp.llama_context_p, idx: int = -1) -> int:
        """Sample from the logits of output `idx` of the last decode, and accept it."""
        if self._chain is None:
            raise RuntimeError("sampler is closed")
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, idx))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

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
