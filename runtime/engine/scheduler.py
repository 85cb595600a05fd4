"""The batching scheduler: who waits, who runs, and what the next
`llama_decode` evaluates. It owns only the queues; each `Sequence` owns its
own state, and `KVPlacement` decides where its KV cache goes. Sequences
arrive prepared (tokenized and budgeted), so nothing here calls llama.cpp.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from runtime.engine.placement import KVPlacement
from runtime.engine.sequence import Sequence, SequenceStatus
from runtime.errors import QueueFullError, RuntimeFailure


@dataclass
class Batch:
    """One step's work: for each sequence, how many of its pending tokens to evaluate."""

    chunks: list[tuple[Sequence, int]] = field(default_factory=list)
    num_tokens: int = 0

    def __bool__(self) -> bool:
        return self.num_tokens > 0

    @property
    def sequences(self) -> list[Sequence]:
        return [seq for seq, _ in self.chunks]

    def add(self, seq: Sequence, count: int) -> None:
        self.chunks.append((seq, count))
        self.num_tokens += count

    def commit(self) -> None:
        """The batch was evaluated: its tokens are in the KV cache now."""
        for seq, count in self.chunks:
            seq.advance(count)


class Scheduler:
    """`reserve`, `add` and `close` may be called from any thread; the rest is the worker's."""

    def __init__(self, *, placement: KVPlacement, max_queue: int, max_batch_tokens: int) -> None:
        num_slots = len(placement.slots)
        if max_batch_tokens < num_slots:
            # Every decoding sequence needs its token in each step's batch.
            raise ValueError(f"a batch of {max_batch_tokens} tokens cannot serve {num_slots} slots")
        self.placement = placement
        self.max_queue = max_queue
        self.max_batch_tokens = max_batch_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # in admission order
        self._arriving = 0  # reserved places of sequences still being prepared
        self._lock = threading.Condition()
        self._closed = False

    # -- any thread ---------------------------------------------------------------

    def reserve(self) -> None:
        """Hold a place for a request about to be prepared; `QueueFullError`
        when `max_queue` requests already wait beyond the free slots."""
        with self._lock:
            if self._closed:
                raise RuntimeFailure("the engine is closed")
            if self.num_waiting >= self.max_queue + self.placement.num_free:
                raise QueueFullError(
                    f"too many requests: {self.num_waiting} are already waiting for "
                    f"{len(self.placement.slots)} slots; retry later"
                )
            self._arriving += 1

    def add(self, seq: Sequence) -> bool:
        """Queue a prepared sequence in its reserved place (a finished one just
        gives the place back). False when closing: the caller ends it."""
        with self._lock:
            self._arriving -= 1
            if self._closed:
                return False
            if not seq.is_finished:
                self.waiting.append(seq)
                self._lock.notify()
            return True

    def close(self) -> None:
        """Refuse new requests and wake the worker (which then calls `drain`)."""
        with self._lock:
            self._closed = True
            self._lock.notify()

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def num_waiting(self) -> int:
        return len(self.waiting) + self._arriving

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
            seq.end_cancelled(detail)
        self.running = []

    def fail(self, sequences: Iterable[Sequence], error: BaseException) -> None:
        """End `sequences` with `error`, clearing their KV cache: after a failed
        decode it is no longer trusted."""
        for seq in sequences:
            self.placement.clear(seq)
            seq.fail(error)

    def rewind(self, sequences: Iterable[Sequence]) -> None:
        """A decode was aborted: each sequence evaluates the same tokens again
        at the next step (or ends there, if it was cancelled)."""
        for seq in sequences:
            self.placement.rewind(seq)

    def _release(self) -> None:
        still = []
        for seq in self.running:
            if not seq.is_finished and seq.is_cancelled:
                seq.end_cancelled(seq.request.cancel.reason)  # its KV cache stays reusable
            if not seq.is_finished:
                still.append(seq)
        self.running = still

    def _admit(self) -> None:
        # First come, first placed: a sequence whose reservation does not fit
        # a shared pool yet holds back those behind it (no starvation).
        while self.waiting and self.placement.num_free:
            seq = self.waiting[0]
            if not seq.is_cancelled and not self.placement.fits(seq):
                break
            with self._lock:
                self.waiting.popleft()
            if seq.is_cancelled:
                seq.end_cancelled(seq.request.cancel.reason)
                continue
            self.placement.allocate(seq)
            self.running.append(seq)
