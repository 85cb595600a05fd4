"""`<think>` reasoning split from the answer, whole or while it streams."""

from __future__ import annotations

from runtime.webui.reasoning import Reasoned, split_reasoning


def test_text_without_reasoning_is_all_answer() -> None:
    assert split_reasoning("Paris.") == Reasoned("Paris.")
    assert not split_reasoning("Paris.").has_reasoning


def test_a_closed_block_is_the_reasoning_and_the_rest_the_answer() -> None:
    text = "<think>\nThe user asks for a capital.\n</think>\n\nParis."
    assert split_reasoning(text) == Reasoned("Paris.", "The user asks for a capital.")


def test_an_open_block_is_reasoning_in_progress() -> None:
    assert split_reasoning("<think>Let me") == Reasoned("", "Let me", is_thinking=True)
    # The closing tag arriving in pieces does not show.
    assert split_reasoning("<think>Let me</thi") == Reasoned("", "Let me", is_thinking=True)


def test_an_opening_tag_still_arriving_shows_nothing_yet() -> None:
    assert split_reasoning("<thi") == Reasoned("")
    assert split_reasoning("<") == Reasoned("")


def test_an_empty_block_as_smollm3_writes_without_thinking_is_not_shown() -> None:
    parts = split_reasoning("<think>\n\n</think>\nHello!")
    assert parts.answer == "Hello!" and not parts.has_reasoning


def test_a_block_opened_by_the_chat_template_ends_at_the_closing_tag() -> None:
    assert split_reasoning("Thinking here.</think>Answer.") == Reasoned("Answer.", "Thinking here.")


def test_a_tag_in_the_middle_of_an_answer_is_part_of_the_answer() -> None:
    text = "Use <think> tags like this: <think>x</think>"
    assert split_reasoning(text) == Reasoned(text)
