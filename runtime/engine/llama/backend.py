"""The engine's llama.cpp handles: one model, one context holding `parallel`
sequences (slots, llama.cpp seq ids) with a KV stream each, and one reusable
`llama_batch`. `parallel: 1` is one slot of the same machinery.

llama-cpp-python's `Llama` cannot create a context for several sequences, so
this module uses the low-level API directly. Not thread-safe: the engine's
worker thread owns it, except for the vocabulary (`vocab.Vocabulary`), which
llama.cpp allows from any thread.

KV sizing: `n_ctx × parallel` cells, one stream of `n_ctx` per slot, so every
slot can hold a full `n_ctx`-token context at the same time and the scheduler
never has to evict a running sequence. The memory preflight counts exactly
that. (Separate streams rather than llama.cpp's unified cache: see `__init__`.)
"""

from __future__ import annotations

import ctypes
import multiprocessing
import threading

import llama_cpp
import numpy as np

from convert.metadata import GGUFInfo
from runtime.engine.llama import pages, residency
from runtime.engine.llama.abort import AbortFlag
from runtime.engine.llama.buffers import Buffers, recording
from runtime.engine.llama.grammar import Grammar
from runtime.engine.llama.loading import load_model, model_info, model_memory
from runtime.engine.llama.log import reporting_load_errors
from runtime.engine.llama.sampler import Sampler
from runtime.engine.llama.threadpool import ThreadPools
from runtime.engine.llama.vocab import Vocabulary
from runtime.engine.logprobs import TokenLogprob, token_logprob
from runtime.engine.sampling_defaults import fill_unset
from runtime.engine.scheduler import Batch
from runtime.engine.sequence import Sequence
from runtime.engine.spec import (
    DEFAULT_BATCH,
    DEFAULT_KV_CACHE_TYPE,
    MAX_DEFAULT_CONTEXT,
    default_threads,
    micro_batch,
)
from runtime.engine.types import ModelSpec, SamplingParams
from runtime.errors import RuntimeFailure

_MAKING_CONTEXT = threading.Lock()

# llama.cpp evaluates sequences with consecutive ids together: `decode` puts a
# filler token in a free slot between busy ones, an extra row in every step
# while the gap lasts. Slot choice counts a gap as this many prompt tokens.
GAP_COST = 32


class DecodeError(RuntimeFailure):
    """llama_decode failed for a whole batch."""

    def __init__(self, code: int) -> None:
        self.code = code
        reason = {1: "no room in the KV cache", 2: "aborted", -1: "invalid batch"}.get(
            code, "fatal error"
        )
        super().__init__(f"llama_decode failed ({code}: {reason})")

    @property
    def aborted(self) -> bool:
        """The abort flag stopped it: not a failure (see `engine.llama.abort`)."""
        return self.code == 2


class Backend(Vocabulary):
    """A model and its multi-sequence context. Slots are llama.cpp seq ids."""

    @classmethod
    def load(cls, spec: ModelSpec) -> Backend:
        """Check and load the model `spec` names (blocking; run it in a thread)."""
        buffers = Buffers()
        model, spec, header, mode = load_model(spec, buffers)
        try:
            return cls(model, spec, header, buffers, mode)
        except BaseException:
            llama_cpp.llama_model_free(model)
            raise

    def __init__(
        self,
        model: llama_cpp.llama_model_p,
        spec: ModelSpec,
        header: GGUFInfo,
        buffers: Buffers | None = None,
        mode: residency.LoadMode | None = None,
    ) -> None:
        super().__init__(model)
        self._model = model
        self.num_slots = max(1, spec.parallel)
        n_ctx = spec.n_ctx or MAX_DEFAULT_CONTEXT
        # Every decoding sequence puts one token in each batch; fillers (see
        # `decode`) take at most one per other slot beyond the scheduler's bound.
        n_batch = max(spec.n_batch or DEFAULT_BATCH, self.num_slots)
        params = llama_cpp.llama_context_default_params()
        # A shared pool (engine.placement): llama.cpp's unified cache, whose
        # cells any slot may take; else a stream of n_ctx cells per slot.
        self.kv_pool = spec.kv_cache_size
        params.n_ctx = self.kv_pool or n_ctx * self.num_slots
        params.n_batch = params.n_ubatch = micro_batch(n_batch, self.num_slots)
        params.n_seq_max = self.num_slots
        # One KV stream per slot, not llama.cpp's unified cache: a sequence's
        # cells then sit at 0..n-1 of its own stream, exactly as when it runs
        # alone, so batching never changes a greedy output (a unified cache
        # interleaves sequences' cells, which changes the attention sums'
        # rounding), and attention reads only its own cells.
        # A pool gives that up for memory (the README has the numbers).
        params.kv_unified = self.kv_pool is not None
        # llama.cpp uses n_threads for one-token batches (a lone stream decoding)
        # and n_threads_batch for the rest; the defaults are llama-cpp-python's.
        params.n_threads = spec.n_threads or default_threads()
        params.n_threads_batch = multiprocessing.cpu_count()
        # Flash attention stays llama.cpp's default (auto: on for CPU), not
        # `Llama`'s (off): about 10% more decode throughput on a 2-core CPU. With
        # a stream per slot, outputs never depend on the batch or on `parallel`.
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
        # The engine reads logits only at each sequence's last token of a
        # batch: at most one row per slot. llama.cpp would otherwise reserve
        # logits for every token of a batch (n_batch × n_vocab floats: 250 MB
        # for SmolLM3's 128k vocabulary).
        params.n_outputs_max = self.num_slots
        params.type_k = params.type_v = kv_type(spec.kv_cache_type)
        buffers = buffers if buffers is not None else Buffers()
        # One context made at a time in this process: the KV cache is found
        # among the memory mapped meanwhile (engine.llama.residency), which
        # must not include another context's, being made in another thread.
        with _MAKING_CONTEXT:
            before = pages.anonymous_mappings()
            with reporting_load_errors(spec.path), recording(buffers):
                ctx = llama_cpp.llama_init_from_model(model, params)
                if not ctx:
                    raise RuntimeError("llama_init_from_model failed")
            self._ctx = ctx
            residency.release_cleared_kv(before, buffers)
        self._memory = llama_cpp.llama_get_memory(ctx)
        self.abort = AbortFlag()
        self.abort.install(ctx)
        self._threads = ThreadPools(ctx, params.n_threads, params.n_threads_batch)
        # Recurrent state cannot drop a tail: no copies or fillers for those models.
        self._can_share = not (
            llama_cpp.llama_model_is_recurrent(model) or llama_cpp.llama_model_is_hybrid(model)
        )
        # Fillers keep streams consecutive; a pool is one stream.
        self._fills_gaps = self._can_share and self.kv_pool is None
        cells = int(llama_cpp.llama_n_ctx(ctx))
        memory = model_memory(buffers, spec, mode, cells) if mode is not None else None
        self.info = model_info(spec, header, model, n_ctx, n_batch, memory)
        self.n_batch = n_batch
        self._init_batch(params.n_batch)

    @property
    def context_length(self) -> int:
        """The context one sequence may fill."""
        return self.info.context_length

    def new_sampler(self, params: SamplingParams, grammar: str | None = None) -> Sampler:
        """A sampler for `params`, whose unset fields take this model's
        defaults, with a grammar when one is given (`GrammarError` if invalid)."""
        filled = fill_unset(params, self.info.sampling)
        rules = Grammar(self._live(), grammar) if grammar is not None else None
        try:
            return Sampler(filled, self.n_vocab, rules, self.encode_piece)
        except BaseException:
            if rules is not None:
                rules.close()
            raise

    # -- one step -------------------------------------------------------------------

    def decode(self, batch: Batch) -> list[tuple[Sequence, int]]:
        """Evaluate `batch` in one llama_decode; `DecodeError` if it fails or
        `abort` stopped it (micro-batches evaluated before then stay in the KV
        cache: the caller drops them, see `Scheduler.rewind`). Returns each
        sequence whose last pending token was in the batch (it samples next)
        with the row of its logits.

        With a KV stream per slot, llama.cpp splits a batch into micro-batches
        of sequences with consecutive ids, in batch order; each is a separate
        pass over the weights. So the chunks go in slot order, and a slot
        between two busy ones that has nothing to evaluate gets a filler token
        (removed right after): four streams then cost one pass, not two or more.
        """
        chunks = sorted(batch.chunks, key=_slot_of)
        tokens, positions, seq_ids, logits = self._tokens, self._pos, self._seq_id, self._logits
        fillers: list[tuple[int, int]] = []
        rows: list[tuple[Sequence, int]] = []
        n = 0
        previous = chunks[0][0].slot
        ctypes.memset(logits, 0, len(logits))
        for seq, count in chunks:
            slot: int = seq.slot  # type: ignore[assignment]
            for gap in range(previous + 1, slot) if self._fills_gaps else ():
                position = int(llama_cpp.llama_memory_seq_pos_max(self._memory, gap)) + 1
                tokens[n], positions[n], seq_ids[n] = 0, position, self._slot_ids[gap]
                fillers.append((gap, position))
                n += 1
            previous = slot
            start = seq.num_kv
            if count == 1:  # a decoding sequence: the common case, kept cheap
                tokens[n] = seq.tokens[start]
                positions[n] = start
                seq_ids[n] = self._slot_ids[slot]
            else:
                end = n + count
                tokens[n:end] = seq.tokens[start : start + count]
                positions[n:end] = range(start, start + count)
                seq_ids[n:end] = [self._slot_ids[slot]] * count
            n += count
            if count == len(seq.tokens) - start:  # only the last token samples
                logits[n - 1] = 1
                rows.append((seq, n - 1))
        self._batch.n_tokens = n
        code = llama_cpp.llama_decode(self._ctx, self._batch)
        for gap, position in fillers:
            llama_cpp.llama_memory_seq_rm(self._memory, gap, position, -1)
        if code != 0:
            raise DecodeError(code)
        return rows

    def sample(self, sampler: Sampler, row: int, *, constrained: bool = False) -> int:
        """Sample from the logits of `row` of the batch just decoded
        (`constrained`: as the sampler's grammar allows)."""
        return sampler.sample(self._ctx, row, constrained=constrained)

    def logprob(self, row: int, token: int, top: int) -> TokenLogprob:
        """`token`'s log-probability under the logits of `row` of the batch
        just decoded, with the `top` most likely tokens (engine.logprobs).
        The sampler chain works on a copy: these are the model's logits."""
        logits = llama_cpp.llama_get_logits_ith(self._ctx, row)
        if not logits:
            raise RuntimeFailure(f"llama.cpp has no logits for row {row} of the batch")
        row_logits = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        return token_logprob(row_logits, token, top, self.token_bytes)

    # -- KV cache by slot (`placement.KVCache`) -----------------------------------------

    def keep_prefix(self, slot: int, n: int) -> bool:
        if llama_cpp.llama_memory_seq_rm(self._memory, slot, n, -1):
            return True
        llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)  # whole: always works
        return False

    def copy_prefix(self, source: int, target: int, n: int) -> bool:
        if not self._can_share:
            return False
        if self.kv_pool is not None:  # one stream: the cells are shared, not copied
            llama_cpp.llama_memory_seq_cp(self._memory, source, target, 0, n)
            return True
        # Slots are separate KV streams. llama.cpp's seq_cp copies a stream whole,
        # every cell of it, which makes the target's whole stream resident (the
        # cache's pages are resident as far as they were written, see
        # engine.llama.residency); its state API copies the sequence's own cells.
        size = int(llama_cpp.llama_state_seq_get_size(self._ctx, source))
        state = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(self._ctx, state, size, source))
        llama_cpp.llama_memory_seq_rm(self._memory, target, -1, -1)
        if not written or not llama_cpp.llama_state_seq_set_data(self._ctx, state, written, target):
            llama_cpp.llama_memory_seq_rm(self._memory, target, -1, -1)
            return False
        return self.keep_prefix(target, n)

    def slot_cost(self, slot: int, busy: list[int]) -> int:
        """The filler tokens (see `decode`) that decoding in `slot` beside `busy` costs."""
        slots = [*busy, slot]
        gaps = max(slots) - min(slots) + 1 - len(set(slots))
        return GAP_COST * gaps if self._fills_gaps else 0

    def positions(self, slot: int) -> tuple[int, int]:
        """The smallest and largest position the slot's KV cache holds (-1 if empty)."""
        return (
            int(llama_cpp.llama_memory_seq_pos_min(self._memory, slot)),
            int(llama_cpp.llama_memory_seq_pos_max(self._memory, slot)),
        )

    def close(self) -> None:
        if self._ctx is not None:
            self._threads.close()
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            self._forget_vocab()
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def _init_batch(self, size: int) -> None:
        # Python-owned arrays behind one llama_batch, allocated once: a step only
        # writes slices of them (no llama_batch_init/free, no per-token objects).
        self._tokens = (llama_cpp.llama_token * size)()
        self._pos = (llama_cpp.llama_pos * size)()
        self._n_seq_id = (ctypes.c_int32 * size)(*([1] * size))  # one sequence per token
        self._slot_arrays = [(llama_cpp.llama_seq_id * 1)(s) for s in range(self.num_slots)]
        self._slot_ids = [
            ctypes.cast(ids, ctypes.POINTER(llama_cpp.llama_seq_id)) for ids in self._slot_arrays
        ]
        self._seq_id = (ctypes.POINTER(llama_cpp.llama_seq_id) * size)()
        self._logits = (ctypes.c_int8 * size)()
        self._batch = llama_cpp.llama_batch(
            n_tokens=0,
            token=ctypes.cast(self._tokens, ctypes.POINTER(llama_cpp.llama_token)),
            embd=None,
            pos=ctypes.cast(self._pos, ctypes.POINTER(llama_cpp.llama_pos)),
            n_seq_id=ctypes.cast(self._n_seq_id, ctypes.POINTER(ctypes.c_int32)),
            seq_id=ctypes.cast(
                self._seq_id, ctypes.POINTER(ctypes.POINTER(llama_cpp.llama_seq_id))
            ),
            logits=ctypes.cast(self._logits, ctypes.POINTER(ctypes.c_int8)),
        )


def kv_type(name: str | None) -> int:
    """llama.cpp's `ggml_type` for a KV cache type name ("q8_0")."""
    return int(getattr(llama_cpp, f"GGML_TYPE_{(name or DEFAULT_KV_CACHE_TYPE).upper()}"))


def _slot_of(chunk: tuple[Sequence, int]) -> int:
    return chunk[0].slot  # type: ignore[return-value]
