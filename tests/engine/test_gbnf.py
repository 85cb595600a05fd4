"""GBNF syntax problems said in words, with line and column (engine.gbnf).
Whether llama.cpp agrees is tests/engine/llama/test_grammar.py's job."""

from __future__ import annotations

import pytest

from runtime.engine.gbnf import GrammarError, dead_end, syntax_problem, where

VALID = [
    'root ::= "a"',
    'root ::= "a" | "b"\n',
    'root ::= [a-z]+ ( "," [a-z]+ )*',
    "root ::= item{2,5}\nitem ::= [0-9]",
    'root ::= [^"\\\\\\x7F\\x00-\\x1F]{0,3} "\\u00e9" "\\U0001F600"',
    '# a comment\nroot ::= ( "x"\n  | "y" ) # trailing\n',
    "root ::= <[42]> !<[7]> .",
    'root ::= "a"\r\nb ::= "c"',
    'root ::= x\nx ::= "y"?',
]

INVALID = [
    ('root ::= "a" foo', "line 1, column 14: undefined rule 'foo'"),
    ('start ::= "a"', "no 'root' rule"),
    ('root = "a"', "line 1, column 6: expecting '::=' after the rule name"),
    ('root ::= "abc', "line 1, column 10: unterminated string literal"),
    ("root ::= [a-z", "unterminated character class"),
    ('root ::= ("a" | "b"', "expecting ')' to close the group at line 1, column 10"),
    ('root ::= * "a"', "'*' has nothing before it to repeat"),
    ('root ::= "\\q"', "unknown escape \\q"),
    ('root ::= "\\x4"', "\\x needs 2 hex digits"),
    ('root ::= "a"{3', "expecting '}' to end the repetition"),
    ('root ::= "a"{x}', "expecting a number"),
    ('root ::= "a"{2001}', "2001 repetitions are more than llama.cpp allows (2000)"),
    ('root ::= "a" ) "b"', "line 1, column 14: expecting the end of the rule"),
    ("root ::= <[12>", "expecting ']>' to end the token id"),
    ('root ::= "a"\n\nbad rule', "line 3, column 5: expecting '::=' after the rule name"),
]


@pytest.mark.parametrize("text", VALID)
def test_a_grammar_in_llama_cpps_syntax_has_no_problem(text: str) -> None:
    assert syntax_problem(text) is None


@pytest.mark.parametrize(("text", "problem"), INVALID)
def test_a_broken_grammar_is_named_with_where_it_breaks(text: str, problem: str) -> None:
    found = syntax_problem(text)
    assert found is not None and problem in found


def test_where_counts_lines_and_columns_from_one() -> None:
    assert where("ab\ncd", 0) == "line 1, column 1"
    assert where("ab\ncd", 4) == "line 2, column 2"


def test_a_dead_end_says_where_the_answer_stopped() -> None:
    error = dead_end('{"name": "A')
    assert isinstance(error, GrammarError) and error.name == "grammar"
    assert 'after \'{"name": "A\'' in str(error)
    assert "at the start of the answer" in str(dead_end(""))
