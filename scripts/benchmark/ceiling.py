"""The raw ceiling: a bare loop of batched `llama_decode` + `llama_sampler_sample`
over B sequences at once, with no scheduling, no detokenizing, no stop checks
and no end-of-generation check (every sequence makes exactly `max_tokens`).

It is the throughput a perfect scheduler would get from llama.cpp with the same
model, context size per sequence, threads and prompt (see `RawContext`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import time
from contextlib import ExitStack

import llama_cpp

from runtime.engine.llama.log import route_llama_logs
from scripts.benchmark.stats import RunRecord


class RawModel:
    """A model loaded with llama.cpp's C API (the weights stay mmapped)."""

    def __init__(self, path: str, n_threads: int, *, vocab_only: bool = False) -> None:
        llama_cpp.llama_backend_init()
        route_llama_logs()  # llama.cpp's log to Python logging, not stderr
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        params.vocab_only = vocab_only
        self.handle = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not self.handle:
            raise RuntimeError(f"llama.cpp cannot load {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.handle)
        self.n_threads = n_threads

    def encode(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 8
        buffer = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buffer, size, False, True)
        return with_bos(
            list(buffer[:n]),
            llama_cpp.llama_vocab_bos(self.vocab),
            bool(llama_cpp.llama_vocab_get_add_bos(self.vocab)),
        )

    def close(self) -> None:
        if self.handle:
            llama_cpp.llama_model_free(self.handle)
            self.handle = None


def with_bos(tokens: list[int], bos: int, adds_bos: bool) -> list[int]:
    """The prompt as our engine feeds it (runtime.engine.llama.vocab.Vocabulary.encode):
    special tokens parsed, BOS in front once when the model wants it."""
    if adds_bos and bos >= 0 and tokens[:1] != [bos]:
        tokens = [bos, *tokens]
    while len(tokens) >= 2 and tokens[0] == tokens[1] == bos:
        tokens = tokens[1:]
    return tokens


# The context settings of our batching engine (runtime/engine/llama/backend.py), so
# that the ceiling differs from it only by having no scheduler. Keep in step.
FLASH_ATTENTION = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
KV_UNIFIED = False  # one KV stream per sequence


class RawContext:
    """One context for up to `max_sequences` sequences, set up as the batching
    engine sets up its own: `n_ctx` cells per sequence, n_threads for one-token
    batches and llama-cpp-python's default (every CPU) for larger ones, and
    FLASH_ATTENTION and KV_UNIFIED as above."""

    def __init__(self, model: RawModel, n_ctx: int, n_batch: int, max_sequences: int) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * max_sequences
        params.n_batch = params.n_ubatch = max(n_batch, max_sequences)
        params.n_seq_max = max_sequences
        params.n_threads = model.n_threads
        params.n_threads_batch = multiprocessing.cpu_count()
        params.kv_unified = KV_UNIFIED
        params.flash_attn_type = FLASH_ATTENTION
        self.settings = {
            "n_ctx": params.n_ctx,
            "n_batch": params.n_batch,
            "n_seq_max": params.n_seq_max,
            "n_threads": params.n_threads,
            "n_threads_batch": params.n_threads_batch,
            "kv_unified": KV_UNIFIED,
            "flash_attn_type": FLASH_ATTENTION,
        }
        self.ctx = llama_cpp.llama_init_from_model(model.handle, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp cannot create a context")
        self.n_batch = params.n_batch
        self.max_sequences = max_sequences
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    def close(self) -> None:
        if self.ctx:
            llama_cpp.llama_batch_free(self.batch)
            llama_cpp.llama_free(self.ctx)
            self.ctx = None

    def run(self, prompts: list[list[int]], max_tokens: int) -> RunRecord:
        """Prefill one prompt per sequence (as few batches as n_batch allows),
        then decode `max_tokens` tokens for each, one `llama_decode` per step
        over all of them."""
        n_sequences = len(prompts)
        if n_sequences > self.max_sequences:
            raise ValueError(f"{n_sequences} sequences > {self.max_sequences}")
        ctx, batch = self.ctx, self.batch
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), False)
        with ExitStack() as stack:
            samplers = []
            for _ in range(n_sequences):
                chain = llama_cpp.llama_sampler_chain_init(
                    llama_cpp.llama_sampler_chain_default_params()
                )
                llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
                stack.callback(llama_cpp.llama_sampler_free, chain)
                samplers.append(chain)

            started = time.perf_counter()
            # Prefill: the prompts packed n_batch tokens at a time; each
            # sequence samples its first token right after the batch holding its
            # last prompt token (a later llama_decode replaces the logits).
            entries = [
                (s, pos, token, pos == len(prompt) - 1)
                for s, prompt in enumerate(prompts)
                for pos, token in enumerate(prompt)
            ]
            tokens = [0] * n_sequences
            first_token_at = [0.0] * n_sequences
            for start in range(0, len(entries), self.n_batch):
                chunk = entries[start : start + self.n_batch]
                _fill(batch, chunk)
                _decode(ctx, batch)
                for i, (s, _, _, is_last) in enumerate(chunk):
                    if is_last:
                        tokens[s] = llama_cpp.llama_sampler_sample(samplers[s], ctx, i)
                        first_token_at[s] = time.perf_counter()
            # Decode: one token per sequence per llama_decode.
            positions = [len(prompt) for prompt in prompts]
            for _ in range(max_tokens - 1):
                _fill(batch, [(s, positions[s], tokens[s], True) for s in range(n_sequences)])
                _decode(ctx, batch)
                positions = [position + 1 for position in positions]
                tokens = [
                    llama_cpp.llama_sampler_sample(samplers[s], ctx, s) for s in range(n_sequences)
                ]
            finished = time.perf_counter()
        return RunRecord(
            clients=n_sequences,
            wall_s=finished - started,
            ttft_s=[at - started for at in first_token_at],
            completion_tokens=[max_tokens] * n_sequences,
            finish_reasons=["length"] * n_sequences,
        )


def _fill(batch: llama_cpp.llama_batch, entries: list[tuple[int, int, int, bool]]) -> None:
    for i, (seq, pos, token, wants_logits) in enumerate(entries):
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = wants_logits
    batch.n_tokens = len(entries)


def _decode(ctx: ctypes.c_void_p, batch: llama_cpp.llama_batch) -> None:
    status = llama_cpp.llama_decode(ctx, batch)
    if status != 0:
        raise RuntimeError(f"llama_decode returned {status}")
