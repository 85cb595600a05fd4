"""The batching scheduler and KV placement, without a model: a fake KV cache
records what placement asks of it, prompts are lists of numbers, and a "step"
commits the planned batch and samples a fixed token for each sequence that
is due one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from runtime.engine.budget import token_budget
from runtime.engine.placement import KVPlacement, common_prefix
from runtime.engine.scheduler import Batch, Scheduler
from runtime.engine.sequence import Sequence, SequenceStatus
from runtime.engine.types import FinishReason, GenerationRequest, GenerationResult
from runtime.errors import InputError, QueueFullError, RuntimeFailure

CONTEXT = 100
GAP_COST = 32  # the backend's price of a filler token (see `llama.backend`)


class FakeKV:
    def __init__(self, can_drop_tails: bool = True) -> None:
        self.calls: list[tuple[str, int, ...]] = []  # type: ignore[misc]
        self.can_drop_tails = can_drop_tails

    def keep_prefix(self, slot: int, n: int) -> bool:
        self.calls.append(("keep", slot, n))
        return self.can_drop_tails or n == 0

    def copy_prefix(self, source: int, target: int, n: int) -> bool:
        self.calls.append(("copy", source, target, n))
        return True

    def slot_cost(self, slot: int, busy: list[int]) -> int:
        slots = [*busy, slot]
        return GAP_COST * (max(slots) - min(slots) + 1 - len(set(slots)))


@pytest.fixture(autouse=True)
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The loop sequences deliver to; the tests run it to read results."""
    global LOOP
    LOOP = asyncio.new_event_loop()
    yield LOOP
    LOOP.close()


LOOP: asyncio.AbstractEventLoop


def prepare(seq: Sequence) -> None:
    """What the engine's intake does. Prompts are space-separated token
    numbers; "" is an input error."""
    prompt = [int(word) for word in (seq.request.prompt or "").split()]
    if not prompt:
        seq.fail(InputError("the prompt is empty"))
        return
    seq.prepare(
        prompt,
        token_budget(len(prompt), CONTEXT, seq.request.max_tokens),
        token_bytes=lambda token: f"<{token}>".encode(),
        context_length=CONTEXT,
        sampler=None,
    )


def make(
    slots: int = 2, max_queue: int = 4, batch: int = 16, kv: FakeKV | None = None, **kw: int
) -> Scheduler:
    return Scheduler(
        placement=KVPlacement(kv or FakeKV(), slots, **kw),
        max_queue=max_queue,
        max_batch_tokens=batch,
    )


def submit(scheduler: Scheduler, prompt: str, max_tokens: int = 3) -> Sequence:
    scheduler.reserve()
    seq = Sequence(GenerationRequest(prompt=prompt, max_tokens=max_tokens), LOOP)
    prepare(seq)
    scheduler.add(seq)
    return seq


def due(batch: Batch) -> list[Sequence]:
    """The sequences whose last pending token is in `batch` (before `commit`)."""
    return [seq for seq, count in batch.chunks if count == seq.num_pending]


def run(batch: Batch, token: int = 7) -> None:
    """What the engine does with a plan, minus llama.cpp."""
    sampling = due(batch)
    batch.commit()
    for seq in sampling:
        seq.append(token, is_eog=False)


def step(scheduler: Scheduler, token: int = 7) -> Batch:
    batch = scheduler.schedule()
    run(batch, token)
    return batch


def result(seq: Sequence) -> GenerationResult:
    return LOOP.run_until_complete(seq.result())


def error(seq: Sequence) -> BaseException | None:
    try:
        result(seq)
    except Exception as exc:
        return exc
    return None


def plan(batch: Batch) -> list[tuple[Sequence, int]]:
    return batch.chunks


def numbers(n: int, start: int = 100) -> str:
    return " ".join(str(start + i) for i in range(n))


def test_waiting_requests_are_admitted_in_arrival_order_into_free_slots() -> None:
    scheduler = make(slots=2)
    first, second, third = (submit(scheduler, p) for p in ("1 2", "3 4", "5 6"))
    batch = scheduler.schedule()
    assert plan(batch) == [(first, 2), (second, 2)]
    assert (first.slot, second.slot) == (0, 1)
    assert third.status is SequenceStatus.WAITING and list(scheduler.waiting) == [third]


def test_decoding_sequences_go_first_and_prompt_chunks_fill_the_batch_up_to_its_bound() -> None:
    scheduler = make(slots=3, batch=8)
    a = submit(scheduler, "1 2", max_tokens=10)
    step(scheduler)  # a is decoding now
    b, c = submit(scheduler, numbers(5)), submit(scheduler, numbers(9, 200))
    batch = scheduler.schedule()
    assert plan(batch) == [(a, 1), (b, 5), (c, 2)]
    assert batch.num_tokens == 8
    assert due(batch) == [a, b]  # c's prompt is not done: no logits for it yet
    run(batch)
    assert c.status is SequenceStatus.PREFILL and c.num_kv == 2


def test_a_long_prompt_is_prefilled_in_chunks_while_other_streams_keep_decoding() -> None:
    scheduler = make(slots=2, batch=4)
    stream = submit(scheduler, "1", max_tokens=50)
    step(scheduler)
    long = submit(scheduler, numbers(10))
    chunks = []
    while long.status is not SequenceStatus.DECODE:
        batch = step(scheduler)
        chunks.append(dict(plan(batch)).get(long))
        assert dict(plan(batch))[stream] == 1  # a token for the stream in every step
    assert chunks == [3, 3, 3, 1]
    assert stream.num_completion_tokens == 1 + len(chunks)  # a delta each


def test_a_new_request_takes_the_free_slot_with_the_longest_common_prefix() -> None:
    kv = FakeKV()
    scheduler = make(slots=3, kv=kv)
    for prompt in ("1 2 3", "1 2 9 9", "5 5 5"):
        submit(scheduler, prompt, max_tokens=1)
    step(scheduler)  # each samples its one token and finishes
    kv.calls.clear()
    reuse = submit(scheduler, "1 2 9 4 4")
    step(scheduler)
    assert reuse.slot == 1 and reuse.num_cached == 3
    # Only the diverging tail of the old sequence's KV cache is dropped.
    assert kv.calls == [("keep", 1, 3)]
    assert reuse.num_kv == 5 and reuse.status is SequenceStatus.DECODE


def test_among_equal_prefixes_the_least_recently_used_slot_is_taken() -> None:
    scheduler = make(slots=3)
    for prompt in ("1 1", "2 2", "3 3"):
        submit(scheduler, prompt, max_tokens=1)
    step(scheduler)
    again = submit(scheduler, "2 2 5", max_tokens=1)
    step(scheduler)
    assert again.slot == 1  # slot 1 is now the most recently used
    fresh = submit(scheduler, "9 9")
    step(scheduler)
    assert fresh.slot == 0  # slots 0 and 2 share nothing with it; 0 was used longest ago


def test_a_new_request_fills_a_gap_between_busy_slots_rather_than_widen_the_span() -> None:
    scheduler = make(slots=4)
    submit(scheduler, "1 1", max_tokens=9)
    submit(scheduler, "2 2", max_tokens=1)
    submit(scheduler, "3 3", max_tokens=9)
    step(scheduler)  # slot 1's sequence is done: slots 0 and 2 are busy
    fresh = submit(scheduler, "9 9")
    step(scheduler)
    # Slot 3 was never used (least recently used), but slot 1 closes the gap.
    assert fresh.slot == 1


def test_a_long_shared_prefix_is_worth_a_gap() -> None:
    scheduler = make(slots=4, batch=64)
    prompt = numbers(40)
    submit(scheduler, "1 1", max_tokens=9)
    submit(scheduler, "2 2", max_tokens=9)
    submit(scheduler, "3 3", max_tokens=1)
    submit(scheduler, prompt + " 5", max_tokens=1)
    step(scheduler)  # slots 2 and 3 are free; slot 3 holds the long prompt
    reuse = submit(scheduler, prompt + " 6")
    step(scheduler)
    assert reuse.slot == 3 and reuse.num_cached == 40


def test_a_prompt_held_whole_still_evaluates_its_last_token() -> None:
    kv = FakeKV()
    scheduler = make(slots=1, kv=kv)
    submit(scheduler, "1 2 3 4", max_tokens=1)
    step(scheduler)
    again = submit(scheduler, "1 2 3 4", max_tokens=1)
    batch = step(scheduler)
    assert again.num_cached == 3 and plan(batch) == [(again, 1)]
    assert result(again).usage.cached_tokens == 3
    assert kv.calls[-1] == ("keep", 0, 3)


def test_finished_sequences_keep_their_tokens_for_reuse() -> None:
    scheduler = make(slots=2)
    done = submit(scheduler, "1 2 3", max_tokens=2)
    step(scheduler)
    step(scheduler)
    assert done.is_finished and scheduler.placement.num_free == 2
    assert scheduler.placement.slots[0] is done
    # Prompt and the first sampled token are in the KV cache; the last one never was.
    assert done.tokens == [1, 2, 3, 7, 7] and done.num_kv == 4
    follow_up = submit(scheduler, "1 2 3 7 7 8")
    step(scheduler)
    assert follow_up.slot == 0 and follow_up.num_cached == 4


def test_a_longer_prefix_in_a_busy_slot_is_copied_instead_of_recomputed() -> None:
    kv = FakeKV()
    scheduler = make(slots=2, kv=kv, batch=128, min_copy=8)
    system = numbers(40)
    busy = submit(scheduler, system + " 1", max_tokens=20)
    step(scheduler)
    kv.calls.clear()
    other = submit(scheduler, system + " 2")
    step(scheduler)
    assert other.slot == 1 and busy.slot == 0
    assert kv.calls == [("keep", 1, 0), ("copy", 0, 1, 40)]
    assert other.num_cached == 40


def test_a_short_shared_prefix_is_not_worth_copying_a_slot() -> None:
    kv = FakeKV()
    scheduler = make(slots=2, kv=kv, min_copy=8)
    submit(scheduler, numbers(5) + " 1", max_tokens=20)
    step(scheduler)
    other = submit(scheduler, numbers(5) + " 2")
    step(scheduler)
    assert other.num_cached == 0 and not any(call[0] == "copy" for call in kv.calls)


def test_a_model_that_cannot_drop_a_tail_starts_the_slot_over() -> None:
    kv = FakeKV(can_drop_tails=False)
    scheduler = make(slots=1, kv=kv)
    submit(scheduler, "1 2 3", max_tokens=1)
    step(scheduler)
    again = submit(scheduler, "1 2 4")
    step(scheduler)
    assert again.num_cached == 0 and again.num_kv == 3


def test_a_full_queue_refuses_with_queue_full_error() -> None:
    scheduler = make(slots=2, max_queue=1)
    for prompt in ("1", "2", "3"):  # two will take the free slots, one may wait
        submit(scheduler, prompt, max_tokens=1)
    with pytest.raises(QueueFullError, match="3 are already waiting for 2 slots"):
        submit(scheduler, "4")
    step(scheduler)  # "1" and "2" make their one token: two slots free again
    submit(scheduler, "4")
    submit(scheduler, "5")
    with pytest.raises(QueueFullError):
        submit(scheduler, "6")


def test_a_cancelled_sequence_frees_its_slot_at_the_next_step_even_during_prefill() -> None:
    scheduler = make(slots=1, batch=4)
    long = submit(scheduler, numbers(20), max_tokens=5)
    queued = submit(scheduler, "1 2")
    step(scheduler)
    assert long.status is SequenceStatus.PREFILL and long.num_kv == 4
    long.request.cancel.cancel()
    batch = step(scheduler)
    assert long.is_finished and plan(batch) == [(queued, 2)]
    assert result(long).finish_reason is FinishReason.CANCELLED
    assert queued.slot == 0
    # What it prefilled stays valid: a later request could have reused it.
    assert long.num_kv == 4


def test_a_request_cancelled_while_waiting_never_takes_a_slot() -> None:
    kv = FakeKV()
    scheduler = make(slots=1, kv=kv)
    seq = submit(scheduler, "1 2")
    seq.request.cancel.cancel()
    assert not step(scheduler)
    assert result(seq).finish_reason is FinishReason.CANCELLED
    assert seq.slot is None and kv.calls == [] and scheduler.placement.num_free == 1


def test_a_request_that_fails_to_prepare_never_takes_a_slot() -> None:
    scheduler = make(slots=1)
    bad, good = submit(scheduler, ""), submit(scheduler, "1")
    step(scheduler)
    assert isinstance(error(bad), InputError)
    assert bad.slot is None and good.slot == 0


def test_a_failed_batch_fails_its_sequences_and_clears_their_slots() -> None:
    kv = FakeKV()
    scheduler = make(slots=2, kv=kv)
    a, b = submit(scheduler, "1 2"), submit(scheduler, "3 4")
    batch = scheduler.schedule()
    kv.calls.clear()
    scheduler.fail([seq for seq, _ in batch.chunks], RuntimeFailure("llama_decode failed"))
    assert kv.calls == [("keep", 0, 0), ("keep", 1, 0)]
    assert all(isinstance(error(s), RuntimeFailure) for s in (a, b))
    assert a.num_kv == 0 and not scheduler.schedule() and scheduler.placement.num_free == 2


def test_draining_cancels_what_runs_and_what_waits() -> None:
    scheduler = make(slots=1)
    running, waiting = submit(scheduler, "1"), submit(scheduler, "2")
    step(scheduler)
    scheduler.close()
    scheduler.drain("the engine was closed")
    for seq in (running, waiting):
        ended = result(seq)
        assert ended.finish_reason is FinishReason.CANCELLED
        assert ended.detail == "the engine was closed"
    with pytest.raises(RuntimeFailure, match="closed"):
        submit(scheduler, "3")


def test_an_aborted_batch_leaves_nothing_in_the_kv_cache_and_is_planned_again() -> None:
    kv = FakeKV()
    scheduler = make(slots=2, batch=8, kv=kv)
    decoding = submit(scheduler, "1 2", max_tokens=5)
    step(scheduler)
    prefilling = submit(scheduler, numbers(20))
    aborted = scheduler.schedule()  # llama_decode returns 2: nothing is committed
    kv.calls.clear()
    scheduler.rewind([seq for seq, _ in aborted.chunks])
    assert kv.calls == [("keep", 0, decoding.num_kv), ("keep", 1, 0)]
    assert plan(scheduler.schedule()) == plan(aborted) == [(decoding, 1), (prefilling, 7)]


def test_a_model_that_cannot_drop_a_tail_evaluates_the_whole_sequence_again_after_an_abort() -> (
    None
):
    scheduler = make(slots=1, batch=16, kv=FakeKV(can_drop_tails=False))
    seq = submit(scheduler, "1 2 3", max_tokens=5)
    step(scheduler)
    step(scheduler)
    assert seq.status is SequenceStatus.DECODE and seq.tokens == [1, 2, 3, 7, 7]
    started = seq.decode_started_at
    scheduler.rewind([seq for seq, _ in scheduler.schedule().chunks])  # aborted
    assert (seq.status, seq.num_kv) == (SequenceStatus.PREFILL, 0)
    step(scheduler)  # the whole sequence in one chunk, then the next token
    assert seq.status is SequenceStatus.DECODE and seq.tokens == [1, 2, 3, 7, 7, 7]
    assert seq.decode_started_at == started


def test_the_worker_sleeps_until_a_request_arrives() -> None:
    scheduler = make()
    woke = threading.Event()

    def worker() -> None:
        scheduler.wait_for_work(timeout=10)
        woke.set()

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.05)
    assert not woke.is_set()
    submit(scheduler, "1")
    assert woke.wait(5)
    thread.join()


def test_a_batch_must_hold_a_token_for_every_slot() -> None:
    with pytest.raises(ValueError, match="cannot serve 8 slots"):
        make(slots=8, batch=4)


def test_common_prefix_is_bounded_by_the_limit_and_both_lengths() -> None:
    assert common_prefix([1, 2, 3, 4], [1, 2, 3, 5], 10) == 3
    assert common_prefix([1, 2, 3], [1, 2, 3, 4], 10) == 3
    assert common_prefix([1, 2, 3], [1, 2, 3], 2) == 2
    assert common_prefix([9], [1], 5) == 0
    assert common_prefix([], [1], 5) == 0
    long = list(range(1000))
    assert common_prefix(long, [*long[:617], -1], 2000) == 617


# -- a shared KV pool (`kv_cache_size`): reservations ----------------------------------
# Reservation: prompt + max new tokens + RESERVE_MARGIN (16), at most CONTEXT (100).


def test_in_a_pool_a_request_waits_until_its_reservation_fits_beside_the_running_ones() -> None:
    scheduler = make(slots=4, pool=150)
    first = submit(scheduler, numbers(10), max_tokens=40)  # reserves 66
    second = submit(scheduler, numbers(10, 300), max_tokens=40)  # 66: 132 in all
    third = submit(scheduler, "1 2", max_tokens=5)  # 23 more would make 155 > 150
    step(scheduler)
    assert first.slot is not None and second.slot is not None
    assert third.status is SequenceStatus.WAITING  # a slot is free, the cells are not
    while not first.is_finished:
        step(scheduler)
    step(scheduler)
    assert third.slot is not None  # the first one's reservation went back to the pool


def test_a_pool_admits_first_come_first_placed() -> None:
    scheduler = make(slots=4, pool=150)
    submit(scheduler, numbers(10), max_tokens=100)  # reserves the whole context: 100
    big = submit(scheduler, numbers(10, 300), max_tokens=100)  # 100 more: does not fit
    small = submit(scheduler, "1 2", max_tokens=1)  # would fit, but arrived after `big`
    step(scheduler)
    assert big.status is SequenceStatus.WAITING and small.status is SequenceStatus.WAITING


def test_a_pool_drops_finished_sequences_cells_least_recently_used_first_to_make_room() -> None:
    kv = FakeKV()
    scheduler = make(slots=4, pool=150, kv=kv, batch=128)
    old = submit(scheduler, numbers(40), max_tokens=1)
    newer = submit(scheduler, numbers(40, 300), max_tokens=1)
    step(scheduler)  # both finish, keeping 40 cells each for prefix reuse
    assert old.is_finished and newer.is_finished
    kv.calls.clear()
    fresh = submit(scheduler, numbers(30, 500), max_tokens=30)  # reserves 76: 80 + 76 > 150
    step(scheduler)
    assert fresh.slot is not None
    assert ("keep", old.slot, 0) in kv.calls  # the older cache went
    assert ("keep", newer.slot, 0) not in kv.calls  # 40 + 76 fits: the newer one stays
    assert scheduler.placement.cells_reserved <= 150


def test_in_a_pool_any_shared_prefix_is_shared_not_recomputed() -> None:
    kv = FakeKV()
    scheduler = make(slots=2, pool=150, kv=kv)
    submit(scheduler, "1 2 3 4", max_tokens=20)
    step(scheduler)
    kv.calls.clear()
    other = submit(scheduler, "1 2 3 9", max_tokens=5)
    step(scheduler)
    # Three tokens are below MIN_COPY, but in a pool sharing cells costs nothing.
    assert ("copy", 0, 1, 3) in kv.calls and other.num_cached == 3
