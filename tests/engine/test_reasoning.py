"""Splitting reasoning from the answer, as text streams in."""

from __future__ import annotations

import pytest

from runtime.engine.reasoning import ReasoningSplitter, ends_inside_block


def split(pieces: list[str], *, thinking: bool = False) -> tuple[str, str, bool]:
    """(reasoning, answer, opened), feeding `pieces` one by one."""
    splitter = ReasoningSplitter(thinking=thinking)
    out = [p for piece in pieces for p in splitter.feed(piece)] + splitter.flush()
    reasoning = "".join(p.text for p in out if p.reasoning)
    answer = "".join(p.text for p in out if not p.reasoning)
    return reasoning, answer, splitter.opened


def by_character(text: str) -> list[str]:
    return list(text)


@pytest.mark.parametrize("chunks", [lambda t: [t], by_character])
def test_a_leading_block_is_reasoning_and_the_rest_the_answer(chunks) -> None:
    text = "<think>\nFirst, 2+2.\nIt is 4.\n</think>\n\nThe answer is 4."
    assert split(chunks(text)) == ("First, 2+2.\nIt is 4.", "The answer is 4.", True)


@pytest.mark.parametrize("chunks", [lambda t: [t], by_character])
def test_text_without_a_block_is_all_answer(chunks) -> None:
    assert split(chunks("Hello <think> world")) == ("", "Hello <think> world", False)


def test_an_empty_block_as_smollm3_writes_with_thinking_off_is_no_reasoning() -> None:
    assert split(["<think>\n\n</think>\n", "Hi there"]) == ("", "Hi there", True)


def test_a_block_the_prompt_opened_starts_the_output_as_reasoning() -> None:
    assert split(["hmm, let me see", "</think>", " Yes."], thinking=True) == (
        "hmm, let me see",
        "Yes.",
        True,
    )


def test_a_block_that_never_closes_is_all_reasoning() -> None:
    assert split(["<think>", "still thinking  \n"]) == ("still thinking", "", True)


def test_a_partial_opening_tag_at_the_end_is_answer_text() -> None:
    assert split(["<thi"]) == ("", "<thi", False)


def test_whitespace_before_the_opening_tag_is_allowed() -> None:
    assert split(["\n ", "<think>a</think>b"]) == ("a", "b", True)


def test_a_closing_tag_split_across_pieces_is_not_leaked() -> None:
    splitter = ReasoningSplitter(thinking=True)
    first = splitter.feed("idea </th")
    assert [p.text for p in first] == ["idea"]
    rest = splitter.feed("ink>answer")
    assert [(p.text, p.reasoning) for p in rest] == [("answer", False)]


def test_whether_a_prompt_leaves_a_block_open() -> None:
    assert ends_inside_block("<|im_start|>assistant\n<think>\n")
    assert not ends_inside_block("<|im_start|>assistant\n<think>\n\n</think>\n")
    assert not ends_inside_block("<|im_start|>assistant\n")
