"""Grammar-constrained generation in the batching engine, on the real
embedded model (and the SmolLM3 stand-in's real vocabulary): the output of a
constrained request always parses and validates, its neighbours in the same
batch are untouched, a broken grammar is an input error, a grammar that
dead-ends stops its sequence with an error that says so, and a grammar rules
the answer, never the reasoning."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from runtime.engine.batched import BatchedEngine
from runtime.engine.gbnf import GrammarError
from runtime.engine.json_schema import schema_grammar
from runtime.engine.llama.grammar import JSON_OBJECT_GBNF
from runtime.engine.types import (
    ChatMessage,
    Delta,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelSpec,
    SamplingParams,
)

GREEDY = SamplingParams(greedy=True)
# Bounded everywhere (string lengths, item counts; integers are at most 16
# digits), so that every output ends well inside max_tokens.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "city": {"type": "string", "maxLength": 24},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3},
        "married": {"type": "boolean"},
        "mood": {"enum": ["happy", "sad", "calm"]},
    },
    "required": ["name", "age", "city", "hobbies", "married", "mood"],
    "additionalProperties": False,
}
PROMPTS = [
    "Describe a person as JSON.",
    "Invent a character for a novel.",
    "Who is the president of France?",
    "Write a poem about the sea.",
    "Reply with an empty object.",
    "List three fruits.",
    "def fibonacci(n):",
    "日本の首都はどこですか？",
]
ANSWER = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
THINKING = [
    ChatMessage("user", "What is 2+2? Answer in JSON."),
    ChatMessage("assistant", "<think>\n"),
]


def ask(prompt: str, grammar: str | None, **kwargs: Any) -> GenerationRequest:
    kwargs.setdefault("sampling", GREEDY)
    kwargs.setdefault("max_tokens", 200)
    return GenerationRequest(messages=[ChatMessage("user", prompt)], grammar=grammar, **kwargs)


async def run(
    engine: BatchedEngine, request: GenerationRequest
) -> tuple[list[Delta], GenerationResult]:
    generation = engine.submit(request)
    deltas = [delta async for delta in generation]
    return deltas, await generation.result()


def valid(result: GenerationResult, schema: dict[str, Any]) -> Any:
    assert result.finish_reason == FinishReason.STOP, result
    value = json.loads(result.text)
    jsonschema.validate(value, schema)
    return value


async def test_constrained_output_parses_and_validates_whatever_the_prompt(
    batched: BatchedEngine,
) -> None:
    grammar = schema_grammar(PERSON)
    requests = [
        ask(prompt, grammar, sampling=SamplingParams(temperature=0.9, seed=seed))
        for seed, prompt in enumerate(PROMPTS)
    ]
    results = await asyncio.gather(*(run(batched, request) for request in requests))
    for deltas, result in results:
        valid(result, PERSON)
        assert "".join(d.text for d in deltas) == result.text


async def test_one_constrained_request_leaves_its_neighbours_in_the_batch_alone(
    batched: BatchedEngine,
) -> None:
    free = [ask("What is the capital of France?", None), ask("Write a haiku.", None)]
    alone = [(await run(batched, request))[1].text for request in free]
    mixed = [
        ask("Describe a person.", schema_grammar(PERSON)),
        ask("What is the capital of France?", None),
        ask("Describe a cat in JSON with keys name and color.", JSON_OBJECT_GBNF),
        ask("Write a haiku.", None),
    ]
    results = [r for _, r in await asyncio.gather(*(run(batched, m) for m in mixed))]
    valid(results[0], PERSON)
    assert isinstance(valid(results[2], {"type": "object"}), dict)
    # Greedy output never depends on the batch: the free ones are as when alone.
    assert [results[1].text, results[3].text] == alone


async def test_a_complete_grammar_lets_the_end_of_generation_through(
    batched: BatchedEngine,
) -> None:
    _, result = await run(batched, ask("Is the sky blue?", 'root ::= "yes" | "no"'))
    assert result.text in ("yes", "no")
    assert result.finish_reason == FinishReason.STOP and result.usage.completion_tokens == 1


async def test_an_invalid_grammar_is_an_input_error_and_the_engine_keeps_serving(
    batched: BatchedEngine,
) -> None:
    with pytest.raises(GrammarError, match="undefined rule 'value'"):
        await run(batched, ask("Hi", 'root ::= "{" value "}"'))
    with pytest.raises(GrammarError, match="undefined rule 'value'"):  # even with nothing to write
        await run(batched, ask("Hi", 'root ::= "{" value "}"', max_tokens=0))
    _, after = await run(batched, ask("Hi", None, max_tokens=4))
    assert after.usage.completion_tokens == 4


async def test_a_grammar_that_dead_ends_stops_its_sequence_saying_so(
    batched: BatchedEngine,
) -> None:
    # After "ok" the grammar wants a character from an empty class: no token fits.
    generation = batched.submit(ask("Hi", 'root ::= "ok" [^\\x00-\\U0010FFFF]'))
    deltas: list[str] = []
    with pytest.raises(GrammarError, match="allows no next token after 'ok'"):
        async for delta in generation:
            deltas.append(delta.text)
    assert "".join(deltas) == "ok"
    _, after = await run(batched, ask("Hi", None, max_tokens=4))
    assert after.usage.completion_tokens == 4


async def test_with_a_grammar_and_no_open_block_no_block_opens(batched: BatchedEngine) -> None:
    _, result = await run(batched, ask("Hi", 'root ::= "<think>x</think>y"'))
    assert result.text == "<think>x</think>y" and result.reasoning is None
    assert result.usage.reasoning_tokens == 0


async def test_a_grammar_rules_the_answer_after_the_reasoning_its_budget_closed(
    batched: BatchedEngine,
) -> None:
    request = GenerationRequest(
        messages=THINKING,
        sampling=GREEDY,
        max_tokens=60,
        reasoning_budget=3,
        grammar=schema_grammar(ANSWER),
    )
    deltas, result = await run(batched, request)
    assert result.reasoning and result.usage.reasoning_tokens > 3
    valid(result, ANSWER)
    kinds = [d.reasoning for d in deltas]
    assert kinds == sorted(kinds, reverse=True)  # reasoning first, then the answer


async def test_a_model_that_ends_inside_its_reasoning_still_gives_the_answer_a_grammar_asks_for(
    batched: BatchedEngine,
) -> None:
    # Without a grammar, the embedded model ends its turn inside the block.
    _, free = await run(
        batched, GenerationRequest(messages=THINKING, sampling=GREEDY, max_tokens=60)
    )
    assert free.finish_reason == FinishReason.STOP and free.text == "" and free.reasoning
    request = GenerationRequest(
        messages=THINKING, sampling=GREEDY, max_tokens=60, grammar=schema_grammar(ANSWER)
    )
    _, result = await run(batched, request)
    assert result.reasoning == free.reasoning
    valid(result, ANSWER)


async def test_mirostat_samples_reproducibly_with_a_seed(batched: BatchedEngine) -> None:
    for version in (1, 2):
        sampling = SamplingParams(temperature=0.8, seed=7, mirostat=version, mirostat_tau=3.0)
        texts = {
            (await run(batched, ask("Tell me a story.", None, sampling=sampling, max_tokens=12)))[
                1
            ].text
            for _ in range(2)
        }
        assert len(texts) == 1 and texts.pop()


@pytest.fixture(scope="module")
def smollm3(smollm3_model_path: Path) -> Iterator[BatchedEngine]:
    engine = BatchedEngine.load(ModelSpec(str(smollm3_model_path), n_ctx=512, parallel=2))
    yield engine
    engine.shutdown()


async def test_a_random_model_with_smollm3s_vocabulary_still_writes_valid_json(
    smollm3: BatchedEngine,
) -> None:
    grammar = schema_grammar(PERSON)
    requests = [
        ask(prompt, grammar, sampling=SamplingParams(temperature=1.0, seed=seed), max_tokens=300)
        for seed, prompt in enumerate(PROMPTS[:4])
    ]
    for _, result in await asyncio.gather(*(run(smollm3, r) for r in requests)):
        valid(result, PERSON)
