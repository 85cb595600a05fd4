"""The batching engine's llama.cpp backend on the real embedded model: batches
over several KV streams, prefix keeping and copying, and failures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.engine.budget import TokenBudget
from runtime.engine.llama.backend import Backend, DecodeError
from runtime.engine.scheduler import Batch
from runtime.engine.sequence import Sequence
from runtime.engine.types import GenerationRequest, ModelSpec, SamplingParams
from runtime.errors import RuntimeFailure

CONTEXT = 128


# Where the sequences' deltas would go (nobody reads them here).
LOOP = asyncio.new_event_loop()


@pytest.fixture(scope="module")
def backend(embedded_model_path: Path) -> Iterator[Backend]:
    spec = ModelSpec(str(embedded_model_path), n_ctx=CONTEXT, n_batch=32, parallel=3)
    backend = Backend.load(spec)
    yield backend
    backend.close()


@pytest.fixture(autouse=True)
def empty_slots(backend: Backend) -> None:
    for slot in range(backend.num_slots):
        backend.keep_prefix(slot, 0)


def sequence(backend: Backend, tokens: list[int], slot: int, cached: int = 0) -> Sequence:
    """A sequence placed in `slot` as the scheduler places one: the slot's KV
    cache is cut to the `cached` tokens it shares with `tokens`."""
    backend.keep_prefix(slot, cached)
    seq = Sequence(GenerationRequest(prompt="-"), LOOP)
    seq.prepare(
        tokens,
        TokenBudget(8),
        token_bytes=backend.token_bytes,
        context_length=CONTEXT,
        sampler=backend.new_sampler(SamplingParams(greedy=True)),
    )
    seq.place(slot, cached)
    return seq


def evaluate(backend: Backend, *sequences: Sequence) -> list[int]:
    """Evaluate every pending token of `sequences` (in batches of at most
    n_batch tokens, each sequence in every batch); the next token of each."""
    sampled: dict[Sequence, int] = {}
    while any(seq.num_pending for seq in sequences):
        batch = Batch()
        share = backend.n_batch // len(sequences)
        for seq in sequences:
            if seq.num_pending:
                batch.add(seq, min(seq.num_pending, share))
        rows = backend.decode(batch)
        batch.commit()
        sampled.update((seq, backend.sample(seq.sampler, row)) for seq, row in rows)  # type: ignore[arg-type]
    return [sampled[seq] for seq in sequences]


def test_the_model_info_describes_one_sequence(backend: Backend) -> None:
    assert backend.info.context_length == CONTEXT
    assert backend.info.n_batch == 32 and backend.num_slots == 3


def test_every_slot_holds_a_full_context_at_the_same_time(backend: Backend) -> None:
    prompt = backend.encode("word " * (CONTEXT - 2))[: CONTEXT - 1]
    assert len(prompt) == CONTEXT - 1
    for slot in range(3):
        evaluate(backend, sequence(backend, prompt, slot))
    assert [backend.positions(slot) for slot in range(3)] == [(0, CONTEXT - 2)] * 3


def test_sequences_decoded_together_get_the_tokens_they_get_alone(backend: Backend) -> None:
    prompts = [backend.encode(text) for text in ("Once upon a time", "The capital of France is")]
    alone = [evaluate(backend, sequence(backend, prompt, 0))[0] for prompt in prompts]
    held = sequence(backend, backend.encode("A held prefix"), 1)
    evaluate(backend, held)
    # Slots 0 and 2 decode together around slot 1, which holds a finished prefix.
    together = evaluate(backend, sequence(backend, prompts[0], 0), sequence(backend, prompts[1], 2))
    assert together == alone
    assert backend.positions(1) == (0, held.num_kv - 1)  # the filler token was removed


def test_a_kept_or_copied_prefix_continues_like_a_cold_prompt(backend: Backend) -> None:
    prompt = backend.encode("In a galaxy far, far away, there was a small planet")
    cold = evaluate(backend, sequence(backend, prompt, 2))[0]
    evaluate(backend, sequence(backend, prompt, 0))
    assert backend.keep_prefix(0, 6) and backend.positions(0) == (0, 5)
    assert backend.copy_prefix(0, 1, 4) and backend.positions(1) == (0, 3)
    assert evaluate(backend, sequence(backend, prompt, 1, cached=4)) == [cold]
    assert evaluate(backend, sequence(backend, prompt, 0, cached=6)) == [cold]


def test_an_invalid_batch_is_a_decode_error_and_the_cache_stays_usable(backend: Backend) -> None:
    prompt = backend.encode("Once upon a time")
    expected = evaluate(backend, sequence(backend, prompt, 0))
    backend.keep_prefix(0, 0)
    bad = sequence(backend, [*prompt[:-1], backend.n_vocab + 5], 1)
    with pytest.raises(DecodeError, match="llama_decode failed"):
        evaluate(backend, bad)
    assert evaluate(backend, sequence(backend, prompt, 0)) == expected


def test_the_vocabulary_of_a_closed_model_refuses_calls_instead_of_crashing(
    embedded_model_path: Path,
) -> None:
    backend = Backend.load(ModelSpec(str(embedded_model_path), n_ctx=CONTEXT))
    assert backend.encode("Hi")
    backend.close()
    with pytest.raises(RuntimeFailure, match="the model was unloaded"):
        backend.encode("Hi")
    with pytest.raises(RuntimeFailure):
        backend.is_eog(0)
