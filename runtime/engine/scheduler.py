"""The batching scheduler: who waits, who runs, which slot holds whose KV cache,
and what the next `llama_decode` evaluates.

It owns only the queues and the slot table; each `Sequence` owns its own
state. It never calls llama.cpp itself: the KV cache operations it needs go
through the small `KVCache` protocol, so its rules are tested without a model.

Slots. The context holds `num_slots` sequences (llama.cpp seq ids 0..n-1),
each with `n_ctx` cells of KV cache. A sequence never outgrows `n_ctx` (its
token budget ends it with `length` first), so whenever a slot is free its
share of the cache is free too: admitting needs a free slot and nothing else.
A finished sequence stays in its slot table entry, its KV cache intact, until
a new sequence takes the slot: that is the prefix cache.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from runtime.engine.sequence import Sequence, SequenceStatus
from runtime.errors import QueueFullError, RuntimeFailure

# Copying another slot's KV cache copies its whole stream (llama.cpp cannot
# copy part of one): worth it only when it saves more than this many tokens of
# prefill (a 3B model evaluates ~50 prompt tokens/s on 2 cores).
MIN_COPY = 64
# llama.cpp evaluates sequences with consecutive ids together: the backend puts
# a filler token in a free slot between busy ones, an extra row in every step
# while the gap lasts. Slot choice counts a gap as this many prompt tokens.
GAP_COST = 32


class KVCache(Protocol):
    """The KV cache operations admission needs, by slot (llama.cpp seq id)."""

    def keep_prefix(self, slot: int, n: int) -> bool:
        """Drop positions ≥ n. False when the model cannot drop a tail
        (recurrent models): then the slot was cleared instead."""
        ...

    def copy_prefix(self, source: int, target: int, n: int) -> bool:
        """Give `target` (cleared) the KV cache of positions < n of `source`.
        False when the model cannot (then `target` is empty)."""
        ...


@dataclass
class Batch:
    """One step's work: for each sequence, how many of its pending tokens to evaluate."""

    chunks: list[tuple[Sequence, int]] = field(default_factory=list)
    # Sequences whose last token is in this batch: each samples one token after it.
    sampling: list[Sequence] = field(default_factory=list)
    num_tokens: int = 0

    def __bool__(self) -> bool:
        return self.num_tokens > 0

    def add(self, seq: Sequence, count: int) -> None:
        self.chunks.append((seq, count))
        self.num_tokens += count
        if count == seq.num_pending:
            self.sampling.append(seq)

    def commit(self) -> None:
        """The batch was evaluated: its tokens are in the KV cache now."""
        for seq, count in self.chunks:
            seq.advance(count)


class Scheduler:
    """`add` may be called from any thread; everything else is the worker's."""

    def __init__(
        self,
        *,
        num_slots: int,
        max_queue: int,
        max_batch_tokens: int,
        kv: KVCache,
        prepare: Callable[[Sequence], None],
        min_copy: int = MIN_COPY,
        gap_cost: int = GAP_COST,
    ) -> None:
        if max_batch_tokens < num_slots:
            # Every decoding sequence needs its token in each step's batch.
            raise ValueError(f"a batch of {max_batch_tokens} tokens cannot serve {num_slots} slots")
        self.max_queue = max_queue
        self.max_batch_tokens = max_batch_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # in admission order
        # The sequence whose tokens each slot's KV cache holds: running, or
        # finished and kept for prefix reuse. None: the slot was never used.
        self.slots: list[Sequence | None] = [None] * num_slots
        self._kv = kv
        # Tokenizes and budgets a sequence (`Sequence.start`), or finishes it
        # with an error; on the worker thread, since tokenizing calls llama.cpp.
        self._prepare = prepare
        self.min_copy = min_copy
        self.gap_cost = gap_cost
        self._last_used = [0] * num_slots  # admission counter, for least-recently-used ties
        self._admissions = 0
        self._lock = threading.Condition()
        self._closed = False

    # -- any thread ---------------------------------------------------------------

    def add(self, seq: Sequence) -> None:
        """Queue a request; `QueueFullError` when `max_queue` requests already
        wait beyond the free slots."""
        with self._lock:
            if self._closed:
                raise RuntimeFailure("the engine is closed")
            room = self.max_queue + self.num_free_slots
            if len(self.waiting) >= room:
                raise QueueFullError(
                    f"too many requests: {len(self.waiting)} are already waiting for "
                    f"{len(self.slots)} slots; retry later"
                )
            self.waiting.append(seq)
            self._lock.notify()

    def close(self) -> None:
        """Refuse new requests and wake the worker (which then calls `drain`)."""
        with self._lock:
            self._closed = True
            self._lock.notify()

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def num_free_slots(self) -> int:
        return sum(1 for seq in self.slots if seq is None or seq.is_finished)

    # -- the worker thread ---------------------------------------------------------

    def wait_for_work(self, timeout: float | None = None) -> None:
        """Sleep while nothing waits and nothing runs (no busy loop)."""
        with self._lock:
            if not self.waiting and not self.running and not self._closed:
                self._lock.wait(timeout)

    def schedule(self) -> Batch:
        """Drop finished and cancelled sequences, admit waiting ones into free
        slots, and plan the next batch: one token for each decoding sequence
        first, then prompt chunks in admission order up to `max_batch_tokens`."""
        self._release()
        self._admit()
        batch = Batch()
        for seq in self.running:
            if seq.status is SequenceStatus.DECODE:
                batch.add(seq, 1)
        for seq in self.running:
            room = self.max_batch_tokens - batch.num_tokens
            if room <= 0:
                break
            if seq.status is SequenceStatus.PREFILL:
                batch.add(seq, min(seq.num_pending, room))
        return batch

    def drain(self, detail: str | None = None) -> None:
        """Cancel everything waiting or running (the engine is closing)."""
        with self._lock:
            waiting, self.waiting = list(self.waiting), deque()
        for seq in [*self.running, *waiting]:
            seq.cancel(detail)
        self.running = []

    def fail(self, sequences: Iterable[Sequence], error: BaseException) -> None:
        """End `sequences` with `error`, clearing their slots: after a failed
        decode their KV cache is no longer trusted."""
        for seq in sequences:
            if seq.slot is not None:
                self._kv.keep_prefix(seq.slot, 0)
            seq.forget_kv()
            seq.fail(error)

    def rewind(self, sequences: Iterable[Sequence]) -> None:
        """A decode was aborted: drop what it may have left in these slots' KV
        caches. Each sequence evaluates the same tokens again at the next step
        (or ends there, if it was cancelled)."""
        for seq in sequences:
            if seq.slot is not None and not self._kv.keep_prefix(seq.slot, seq.num_kv):
                seq.rewind(0)  # the model could not drop a tail: the slot was cleared

    def _release(self) -> None:
        still = []
        for seq in self.running:
            if not seq.is_finished and seq.is_cancelled:
                seq.cancel(seq.request.cancel.reason)  # its KV cache so far stays valid for reuse
            if not seq.is_finished:
                still.append(seq)
        self.running = still

    def _admit(self) -> None:
        while self.waiting and self.num_free_slots:
            with self._lock:
                seq = self.waiting.popleft()
            if seq.is_cancelled:
                seq.cancel(seq.request.cancel.reason)
                continue
            self._prepare(seq)  # may finish it: an error, or nothing to generate
            if not seq.is_finished:
                self._place(seq)

    def _place(self, seq: Sequence) -> None:
        """Put `seq` in the free slot whose KV cache shares the longest prefix
        with its prompt, less `gap_cost` per free slot left between busy ones
        (the least recently used among equals, so that recent prefixes
        survive); if another slot, busy or not, shares a longer prefix, its KV
        cache is copied into the chosen slot instead of recomputed."""
        prompt = seq.tokens
        # The last prompt token is always evaluated: its logits give the first token.
        limit = len(prompt) - 1
        reusable = [
            0 if held is None else common_prefix(held.tokens, prompt, min(limit, held.num_kv))
            for held in self.slots
        ]
        busy = [s.slot for s in self.running if not s.is_finished and s.slot is not None]

        def score(slot: int) -> tuple[int, int]:
            return reusable[slot] - self.gap_cost * gaps([*busy, slot]), -self._last_used[slot]

        free = [slot for slot, held in enumerate(self.slots) if held is None or held.is_finished]
        target = max(free, key=score)
        source = max(range(len(self.slots)), key=reusable.__getitem__)
        cached = reusable[target]
        if reusable[source] >= cached + self.min_copy:
            self._kv.keep_prefix(target, 0)
            shared = reusable[source]
            cached = shared if self._kv.copy_prefix(source, target, shared) else 0
        elif not self._kv.keep_prefix(target, cached):
            cached = 0
        self._admissions += 1
        self._last_used[target] = self._admissions
        self.slots[target] = seq
        seq.place(target, cached)
        self.running.append(seq)


def gaps(slots: list[int]) -> int:
    """How many slot ids between the lowest and the highest of `slots` are not in it."""
    return max(slots) - min(slots) + 1 - len(set(slots)) if slots else 0


def common_prefix(a: list[int], b: list[int], limit: int) -> int:
    """How many leading tokens `a` and `b` share, at most `limit`.

    Bisects on slice equality, which compares in C: a 1,000-token system
    prompt is matched in microseconds, not a Python loop per token.
    """
    high = min(limit, len(a), len(b))
    if a[:high] == b[:high]:
        return max(high, 0)
    low = 0  # a[:low] == b[:low] always holds; a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle
    return low
