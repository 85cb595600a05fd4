"""The grammar of a forced call, run through llama.cpp's own grammar sampler
over each model's real vocabulary: it lets through exactly the calls that
parse (one, or several with `parallel`), token by token, and refuses the end
of generation until a call is complete. SmolLM3 writes `<tool_call>` as one
token of its own; SmolLM2 spells it out."""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from runtime.engine.llama.tool_grammar import ToolSchemaError, tool_call_grammar
from runtime.engine.llama.vocab import Vocabulary

WEATHER = {
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
TIME = {"name": "get_time"}  # no parameters: any object
# A pydantic model's schema (openai.pydantic_function_tool writes these): refs into $defs.
BOOKING = {
    "name": "book",
    "parameters": {
        "$defs": {
            "Guest": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        },
        "type": "object",
        "properties": {"guests": {"type": "array", "items": {"$ref": "#/$defs/Guest"}}},
        "required": ["guests"],
    },
}
PARIS = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
NOW = '<tool_call>\n{"name": "get_time", "arguments": {"zone": "UTC"}}\n</tool_call>'


class GrammarCheck:
    """A model's vocabulary (no weights loaded) and llama.cpp's grammar sampler."""

    def __init__(self, path: Path) -> None:
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        assert self.model
        self.vocabulary = Vocabulary(self.model)
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)

    def accepts(self, grammar: str, text: str) -> bool:
        """Whether the grammar lets every token of `text` through, then the end."""
        sampler = llama_cpp.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        assert sampler, "llama.cpp could not parse the grammar"
        try:
            for token in self.vocabulary.encode_piece(text):
                if not self._allows(sampler, token):
                    return False
                llama_cpp.llama_sampler_accept(sampler, token)
            return self._allows(sampler, int(llama_cpp.llama_vocab_eos(self.vocab)))
        finally:
            llama_cpp.llama_sampler_free(sampler)

    @staticmethod
    def _allows(sampler: llama_cpp.llama_sampler_p, token: int) -> bool:
        data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
        candidates = llama_cpp.llama_token_data_array(data, 1, -1, False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
        return not math.isinf(data[0].logit)

    def close(self) -> None:
        llama_cpp.llama_model_free(self.model)


@pytest.fixture(params=["smollm2", "smollm3"])
def check(
    request: pytest.FixtureRequest, embedded_model_path: Path, smollm3_model_path: Path
) -> Iterator[GrammarCheck]:
    path = embedded_model_path if request.param == "smollm2" else smollm3_model_path
    checker = GrammarCheck(path)
    yield checker
    checker.close()


def test_smollm3_writes_the_tag_as_one_token(smollm3_model_path: Path) -> None:
    check = GrammarCheck(smollm3_model_path)
    try:
        assert check.vocabulary.encode_piece(PARIS)[:1] == [128015]
        assert check.accepts(tool_call_grammar([WEATHER], parallel=False), PARIS)
    finally:
        check.close()


def test_a_call_to_a_named_function_with_its_arguments_is_let_through(check: GrammarCheck) -> None:
    grammar = tool_call_grammar([WEATHER], parallel=False)
    assert check.accepts(grammar, PARIS)
    assert check.accepts(grammar, PARIS.replace('"}', '", "days": 3}'))


def test_anything_but_a_complete_call_is_refused(check: GrammarCheck) -> None:
    grammar = tool_call_grammar([WEATHER], parallel=False)
    assert not check.accepts(grammar, "Sure! " + PARIS)
    assert not check.accepts(grammar, PARIS.replace("get_weather", "launch"))
    assert not check.accepts(grammar, PARIS.replace('"city"', '"town"'))  # city is required
    assert not check.accepts(grammar, PARIS.removesuffix("\n</tool_call>"))
    assert not check.accepts(grammar, PARIS + "\n" + PARIS)  # one call only


def test_with_parallel_calls_any_of_the_functions_may_be_called_in_turn(
    check: GrammarCheck,
) -> None:
    grammar = tool_call_grammar([WEATHER, TIME], parallel=True)
    assert check.accepts(grammar, PARIS)
    assert check.accepts(grammar, f"{PARIS}\n{NOW}\n{PARIS}")


def test_refs_resolve_inside_each_functions_own_parameters(check: GrammarCheck) -> None:
    grammar = tool_call_grammar([BOOKING, WEATHER], parallel=False)
    call = '<tool_call>\n{"name": "book", "arguments": {"guests": [{"name": "Ada"}]}}\n</tool_call>'
    assert check.accepts(grammar, call)
    assert not check.accepts(grammar, call.replace('"name": "Ada"', '"age": 3'))


def test_parameters_the_converter_cannot_read_name_their_function() -> None:
    bad = {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}
    with pytest.raises(ToolSchemaError, match="function 'f'") as caught:
        tool_call_grammar([WEATHER, bad], parallel=False)
    assert caught.value.index == 1
