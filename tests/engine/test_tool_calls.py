"""The `<tool_call>` format: an answer's calls are found in whole answers and
in streamed pieces alike, and text that is not a call to a known function
stays text."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from runtime.engine.tool_calls import (
    ParsedCall,
    ToolCallSplitter,
    call_block,
    parse_call,
    split_tool_calls,
)

NAMES = {"get_weather", "get_time"}
PARIS = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
TOKYO = '<tool_call>\n{"name": "get_time", "arguments": {"city": "Tokyo"}}\n</tool_call>'
PARIS_CALL = ParsedCall("get_weather", '{"city": "Paris"}')
TOKYO_CALL = ParsedCall("get_time", '{"city": "Tokyo"}')


def test_an_answer_that_is_one_call_has_no_text() -> None:
    assert split_tool_calls(PARIS, NAMES) == (None, [PARIS_CALL])


def test_several_calls_come_out_in_order_and_the_whitespace_between_them_is_dropped() -> None:
    assert split_tool_calls(f"{PARIS}\n{TOKYO}\n", NAMES) == (None, [PARIS_CALL, TOKYO_CALL])


def test_text_around_calls_is_kept_as_the_answer() -> None:
    text = f"Let me look.\n{PARIS}\nDone."
    assert split_tool_calls(text, NAMES) == ("Let me look.\nDone.", [PARIS_CALL])


def test_an_answer_without_calls_is_all_text() -> None:
    assert split_tool_calls("  Paris is sunny. ", NAMES) == ("Paris is sunny.", [])


def test_max_calls_keeps_the_first_calls_and_drops_the_rest() -> None:
    assert split_tool_calls(f"{PARIS}\n{TOKYO}", NAMES, max_calls=1) == (None, [PARIS_CALL])


def test_a_block_that_is_not_a_call_stays_text_tags_and_all() -> None:
    bad_json = "<tool_call>\n{not json}\n</tool_call>"
    unknown = '<tool_call>{"name": "launch", "arguments": {}}</tool_call>'
    not_object = '<tool_call>{"name": "get_time", "arguments": [1]}</tool_call>'
    for block in (bad_json, unknown, not_object):
        assert split_tool_calls(f"Hi {block}", NAMES) == (f"Hi {block}", [])


def test_a_block_cut_short_stays_text() -> None:
    cut = '<tool_call>\n{"name": "get_weather", "argu'
    assert split_tool_calls(cut, NAMES) == (cut, [])


def test_a_lone_angle_bracket_is_text() -> None:
    assert split_tool_calls("1 < 2 <", NAMES) == ("1 < 2 <", [])


def test_arguments_may_be_a_json_string_or_absent_or_named_parameters() -> None:
    assert parse_call('{"name": "get_time", "arguments": "{\\"city\\": \\"Oslo\\"}"}', NAMES) == (
        ParsedCall("get_time", '{"city": "Oslo"}')
    )
    assert parse_call('{"name": "get_time"}', NAMES) == ParsedCall("get_time", "{}")
    assert parse_call('{"name": "get_time", "parameters": {"a": 1}}', NAMES) == (
        ParsedCall("get_time", '{"a": 1}')
    )


def test_a_call_block_is_written_as_the_model_writes_it() -> None:
    assert call_block("get_weather", {"city": "Paris"}) == PARIS
    assert call_block("get_weather", '{"city":"Paris"}') == PARIS
    written = '<tool_call>\n{"name": "f", "arguments": {oops}\n</tool_call>'
    assert call_block("f", "{oops") == written


def test_arguments_keep_unicode_as_it_is() -> None:
    text = '<tool_call>{"name": "get_weather", "arguments": {"city": "Zürich"}}</tool_call>'
    call = split_tool_calls(text, NAMES)[1][0]
    assert call.arguments == '{"city": "Zürich"}'
    assert json.loads(call.arguments) == {"city": "Zürich"}


def test_the_tag_arriving_in_pieces_is_held_back_until_decided() -> None:
    splitter = ToolCallSplitter(NAMES)
    assert splitter.feed("Sure <tool") == ["Sure"]
    assert splitter.feed('_call>{"name": "get_time", "arguments": {}}') == []
    assert splitter.feed("</tool_call> ok") == [ParsedCall("get_time", "{}"), " ok"]
    assert splitter.flush() == []


ANSWERS = [
    f"Let me look.\n{PARIS}\nDone.",
    f"{PARIS}\n{TOKYO}",
    "1 < 2 and <tool_call>{bad}</tool_call> then  text ",
    f"  {TOKYO}<tool_call>\n" + '{"name": "get_weather", "ar',
]


@given(st.sampled_from(ANSWERS), st.lists(st.integers(min_value=0, max_value=120), max_size=12))
def test_however_the_answer_is_cut_into_pieces_the_parts_are_the_same(
    answer: str, cuts: list[int]
) -> None:
    points = sorted({min(cut, len(answer)) for cut in cuts} | {0, len(answer)})
    splitter = ToolCallSplitter(NAMES)
    parts = []
    for start, end in itertools.pairwise(points):
        parts += splitter.feed(answer[start:end])
    parts += splitter.flush()
    text = "".join(part for part in parts if isinstance(part, str)) or None
    calls = [part for part in parts if isinstance(part, ParsedCall)]
    assert (text, calls) == split_tool_calls(answer, NAMES)
