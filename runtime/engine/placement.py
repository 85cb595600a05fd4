"""KV placement: which slot's KV cache a sequence takes, and what of it is reused.

Slots. The context holds `num_slots` sequences (llama.cpp seq ids 0..n-1),
each with `n_ctx` cells of KV cache. A sequence never outgrows `n_ctx` (its
token budget ends it with `length` first), so whenever a slot is free its
share of the cache is free too: allocating needs a free slot and nothing else.
A finished sequence stays in its slot table entry, its KV cache intact, until
a new sequence takes the slot: that is the prefix cache (evicted least
recently used first).

A shared pool (`pool` cells, llama.cpp's unified KV cache: `kv_cache_size`
smaller than slots x context) changes one rule: a free slot no longer means
free cells. Each running sequence reserves what it may hold (its prompt plus
the tokens it may generate, at most the context), and a sequence is placed
only when its reservation fits beside the others' and the cells finished
sequences still hold for prefix reuse; those are dropped, least recently
used first, to make room. Reservations never overbook the pool, so a decode
never runs out of cells and no sequence is evicted mid-generation. Copying
a prefix in a pool shares its cells (no data moves): any shared prefix is
worth taking.
"""

from __future__ import annotations

from typing import Protocol

from runtime.engine.sequence import Sequence

# Copying another slot's KV cache copies its whole stream (llama.cpp cannot
# copy part of one): worth it only when it saves more than this many tokens of
# prefill (a 3B model evaluates ~50 prompt tokens/s on 2 cores).
MIN_COPY = 64
# Cells a reservation adds beyond prompt + max new tokens: what the engine
# may write itself (a reasoning budget's forced end of thinking).
RESERVE_MARGIN = 16


class KVCache(Protocol):
    """The KV cache operations placement needs, by slot (llama.cpp seq id)."""

    def keep_prefix(self, slot: int, n: int) -> bool:
        """Drop positions ≥ n. False when the model cannot drop a tail
        (recurrent models): then the slot was cleared instead."""
        ...

    def copy_prefix(self, source: int, target: int, n: int) -> bool:
        """Give `target` (cleared) the KV cache of positions < n of `source`.
        False when the model cannot (then `target` is empty)."""
        ...

    def slot_cost(self, slot: int, busy: list[int]) -> int:
        """What decoding in `slot` beside the `busy` slots costs the backend
        at every step, in prompt tokens' worth (0: nothing extra)."""
        ...


class KVPlacement:
    """The slot table; the worker thread's only (`num_free` is read from any thread)."""

    def __init__(
        self, kv: KVCache, num_slots: int, min_copy: int = MIN_COPY, pool: int | None = None
    ) -> None:
        self._kv = kv
        self.pool = pool  # cells shared by every slot; None: a stream per slot
        if pool is not None:
            min_copy = 1
        # The sequence whose tokens each slot's KV cache holds: running, or
        # finished and kept for prefix reuse. None: the slot was never used.
        self.slots: list[Sequence | None] = [None] * num_slots
        self.min_copy = min_copy
        self._last_used = [0] * num_slots  # allocation counter, for least-recently-used ties
        self._allocations = 0

    @property
    def num_free(self) -> int:
        return sum(1 for seq in self.slots if seq is None or seq.is_finished)

    def fits(self, seq: Sequence) -> bool:
        """Whether `seq` can be placed now: a slot is free, and in a pool its
        reservation fits beside the running sequences' (finished sequences'
        cells are dropped to make room)."""
        if not self.num_free:
            return False
        if self.pool is None:
            return True
        running = sum(reservation(held) for held in self.slots if held and not held.is_finished)
        return running + reservation(seq) <= self.pool

    @property
    def cells_reserved(self) -> int:
        """A pool's accounting: running sequences' reservations plus the cells
        finished sequences keep for prefix reuse."""
        return sum(
            held.num_kv if held.is_finished else reservation(held)
            for held in self.slots
            if held is not None
        )

    def allocate(self, seq: Sequence) -> None:
        """Put `seq` in the free slot whose KV cache shares the longest prefix
        with its prompt, less the slot's cost (the least recently used among
        equals, so that recent prefixes survive); if another slot, busy or
        not, shares a longer prefix, its KV cache is copied into the chosen
        slot instead of recomputed."""
        prompt = seq.tokens
        # The last prompt token is always evaluated: its logits give the first token.
        limit = len(prompt) - 1
        reusable = [
            0 if held is None else common_prefix(held.tokens, prompt, min(limit, held.num_kv))
            for held in self.slots
        ]
        free = [slot for slot, held in enumerate(self.slots) if held is None or held.is_finished]
        busy = [slot for slot in range(len(self.slots)) if slot not in free]

        def score(slot: int) -> tuple[int, int]:
            return reusable[slot] - self._kv.slot_cost(slot, busy), -self._last_used[slot]

        target = max(free, key=score)
        source = max(range(len(self.slots)), key=reusable.__getitem__)
        if self.pool is not None:
            self._make_room(seq, target, source if reusable[source] else None)
            if self.slots[source] is None:
                source = target
        cached = reusable[target]
        if reusable[source] >= cached + self.min_copy:
            self._kv.keep_prefix(target, 0)
            shared = reusable[source]
            cached = shared if self._kv.copy_prefix(source, target, shared) else 0
        elif not self._kv.keep_prefix(target, cached):
            cached = 0
        self._allocations += 1
        self._last_used[target] = self._allocations
        self.slots[target] = seq
        seq.place(target, cached)

    def _make_room(self, seq: Sequence, target: int, source: int | None) -> None:
        """Drop other finished sequences' cells, least recently used first
        (the prefix `source` to copy last), until `seq`'s reservation fits in
        the pool. `target`'s cells become part of that reservation."""
        held = self.slots[target]
        replaced = held.num_kv if held is not None else 0
        finished = [
            slot
            for slot, held in enumerate(self.slots)
            if held is not None and held.is_finished and slot != target
        ]
        finished.sort(key=lambda slot: (slot == source, self._last_used[slot]))
        for slot in finished:
            if self.cells_reserved - replaced + reservation(seq) <= (self.pool or 0):
                return
            self._kv.keep_prefix(slot, 0)
            self.slots[slot] = None

    def clear(self, seq: Sequence) -> None:
        """Forget `seq`'s KV cache (after a failed decode it is not trusted)."""
        if seq.slot is not None:
            self._kv.keep_prefix(seq.slot, 0)
        seq.rewind(0)

    def rewind(self, seq: Sequence) -> None:
        """Drop what an aborted decode may have left past `seq.num_kv`."""
        if seq.slot is not None and not self._kv.keep_prefix(seq.slot, seq.num_kv):
            seq.rewind(0)  # the model could not drop a tail: the slot was cleared


def reservation(seq: Sequence) -> int:
    """The cells `seq` may come to hold: its prompt and what it may
    generate, at most its context."""
    wanted = seq.num_prompt_tokens + seq.budget.max_new_tokens + RESERVE_MARGIN
    return min(wanted, seq.context_length) if seq.context_length else wanted


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
