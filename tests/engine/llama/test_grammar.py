"""llama.cpp's grammar sampler on the real embedded vocabulary: our syntax
check agrees with llama.cpp's parser, a refused grammar says why, the grammar
allows and accepts tokens one at a time, and the samplers the chain holds
(Mirostat among them)."""

from __future__ import annotations

import json

import llama_cpp
import llama_cpp.llama_grammar
import pytest

from runtime.engine.batched import BatchedEngine
from runtime.engine.gbnf import GrammarError, syntax_problem
from runtime.engine.json_schema import schema_grammar
from runtime.engine.llama.grammar import JSON_OBJECT_GBNF, DeadEnd, Grammar
from runtime.engine.llama.sampler import Sampler
from runtime.engine.types import SamplingParams
from tests.engine.test_gbnf import INVALID, VALID

SHIPPED = [
    llama_cpp.llama_grammar.ARITHMETIC_GBNF,
    llama_cpp.llama_grammar.C_GBNF,
    llama_cpp.llama_grammar.CHESS_GBNF,
    llama_cpp.llama_grammar.JSON_ARR_GBNF,
    llama_cpp.llama_grammar.LIST_GBNF,
    JSON_OBJECT_GBNF,
    schema_grammar(
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^[a-z]{2,4}$"}}}
    ),
]


def grammar(engine: BatchedEngine, text: str) -> Grammar:
    return Grammar(engine.model._live(), text)


@pytest.mark.parametrize("text", VALID + SHIPPED)
def test_llama_cpp_takes_every_grammar_our_check_passes(engine: BatchedEngine, text: str) -> None:
    assert syntax_problem(text) is None
    grammar(engine, text).close()


@pytest.mark.parametrize(("text", "problem"), INVALID)
def test_llama_cpp_refuses_every_grammar_our_check_refuses_and_we_say_why(
    engine: BatchedEngine, text: str, problem: str
) -> None:
    with pytest.raises(GrammarError, match="invalid grammar") as caught:
        grammar(engine, text)
    assert problem in str(caught.value) and caught.value.name == "grammar"


def test_left_recursion_is_named(engine: BatchedEngine) -> None:
    with pytest.raises(GrammarError, match="left recursion"):
        grammar(engine, 'root ::= root "a" | "b"')


def test_a_token_reference_that_is_not_one_token_is_refused(engine: BatchedEngine) -> None:
    with pytest.raises(GrammarError, match="single token"):
        grammar(engine, "root ::= <definitely not one token>")


def test_the_grammar_allows_only_what_comes_next(engine: BatchedEngine) -> None:
    rules = grammar(engine, 'root ::= "yes" | "no"')
    try:
        yes, no = engine.model.encode_piece("yes"), engine.model.encode_piece("no")
        assert len(yes) == 1 and rules.allows(yes[0]) and rules.allows(no[0])
        assert not rules.allows(engine.model.encode_piece("maybe")[0])
        eos = engine.model.encode_piece("<|im_end|>")[0]
        assert not rules.allows(eos)  # the grammar is not complete yet
        rules.accept(yes[0])
        assert rules.allows(eos) and not rules.allows(no[0])
    finally:
        rules.close()


def test_text_written_before_the_grammar_ruled_is_taken_or_is_a_dead_end(
    engine: BatchedEngine,
) -> None:
    sampler = engine.model.new_sampler(SamplingParams(greedy=True), 'root ::= "{" [a-z]* "}"')
    with sampler:
        sampler.constrain_text("{ab")
        assert sampler.grammar is not None
        assert sampler.grammar.allows(engine.model.encode_piece("}")[0])
        with pytest.raises(DeadEnd):
            sampler.constrain_text("9")


def test_schema_strings_never_hold_raw_control_characters(engine: BatchedEngine) -> None:
    """The converter's own string rule lets a raw newline into a string,
    which is not JSON; ours does not."""
    text = schema_grammar({"type": "object", "properties": {"s": {"type": "string"}}})
    rules = grammar(engine, text)
    try:
        for piece in ['{"s":', ' "', "a"]:
            for token in engine.model.encode_piece(piece):
                rules.accept(token)
        newline = engine.model.encode_piece("\n")[0]
        assert not rules.allows(newline)
        assert rules.allows(engine.model.encode_piece("\\")[0])  # an escape is fine
    finally:
        rules.close()
    assert json.loads('{"s": "a\\nb"}') == {"s": "a\nb"}


def stage_names(sampler: Sampler) -> list[str]:
    chain = sampler._chain
    return [
        llama_cpp.llama_sampler_name(llama_cpp.llama_sampler_chain_get(chain, i)).decode()
        for i in range(llama_cpp.llama_sampler_chain_n(chain))
    ]


@pytest.mark.parametrize(
    ("mirostat", "stages"),
    [
        (0, ["top-k", "top-p", "min-p", "temp", "dist"]),
        (1, ["temp", "mirostat"]),
        (2, ["temp", "mirostat-v2"]),
    ],
)
def test_mirostat_replaces_the_truncating_samplers(
    engine: BatchedEngine, mirostat: int, stages: list[str]
) -> None:
    params = SamplingParams(temperature=0.8, top_k=40, top_p=0.9, min_p=0.05, mirostat=mirostat)
    with engine.model.new_sampler(params) as sampler:
        assert stage_names(sampler) == stages


def test_greedy_wins_over_mirostat(engine: BatchedEngine) -> None:
    with engine.model.new_sampler(SamplingParams(greedy=True, mirostat=2)) as sampler:
        assert stage_names(sampler) == ["greedy"]
