"""Rendering a compiled template against a scope."""

from typing import Any

import pytest

from runtime.binding import compile_template


def render(text: str, **scope: Any) -> Any:
    return compile_template(text).render(scope)


def test_a_whole_string_binding_keeps_the_type_of_its_value() -> None:
    assert render("${input.n}", input={"n": 5}) == 5
    assert render("${input.items}", input={"items": [1, 2]}) == [1, 2]
    assert render("${input.flag}", input={"flag": False}) is False


def test_a_whole_string_cast_gives_a_typed_value() -> None:
    assert render("${input.t as number}", input={"t": "0.5"}) == 0.5
    assert render("${input.t as integer}", input={"t": "7"}) == 7


def test_a_whole_string_binding_with_a_trailing_newline_keeps_its_type() -> None:
    assert render("${input.n}\n", input={"n": 5}) == 5


def test_the_whole_input_renders_as_the_dict() -> None:
    assert render("${input}", input={"a": 1, "b": [2]}) == {"a": 1, "b": [2]}


def test_the_output_key_renders_its_value() -> None:
    assert render("${output}", output={"text": "hi"}) == {"text": "hi"}


def test_an_embedded_binding_is_inserted_as_text() -> None:
    assert render("Hello, ${input.name}!", input={"name": "Ada"}) == "Hello, Ada!"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "[]"),
        ("s", "[s]"),
        (3, "[3]"),
        (0.5, "[0.5]"),
        (True, "[true]"),
        (False, "[false]"),
        ({"k": "é"}, '[{"k": "é"}]'),
        ([1, "a"], '[[1, "a"]]'),
    ],
)
def test_embedded_values_read_as_json_like_text(value: Any, text: str) -> None:
    assert render("[${input.v}]", input={"v": value}) == text


def test_a_missing_value_embedded_in_text_is_empty() -> None:
    assert render("a${input.nothing}b", input={}) == "ab"


def test_a_missing_whole_string_value_is_none() -> None:
    assert render("${input.nothing}", input={}) is None


def test_a_key_absent_from_the_scope_renders_as_none() -> None:
    assert render("${context.user}") is None


@pytest.mark.parametrize(
    "text",
    [
        "${input.a.b}",  # a key that is not there
        "${input.list[5]}",  # an index out of range
        "${input.list[-5]}",
        "${input.name.first}",  # a step into a string
        "${input.name[0]}",
        "${input.count.x}",  # a step into a number
    ],
)
def test_a_path_that_leads_nowhere_is_none(text: str) -> None:
    assert render(text, input={"list": [1], "name": "Ada", "count": 3}) is None


def test_negative_indexes_count_from_the_end() -> None:
    assert render("${input.list[-1]}", input={"list": [1, 2, 3]}) == 3


def test_a_numeric_name_indexes_a_list() -> None:
    assert render("${input.list.1}", input={"list": ["a", "b"]}) == "b"


def test_an_index_on_a_mapping_looks_up_the_string_key() -> None:
    assert render("${input.m[0]}", input={"m": {"0": "zero"}}) == "zero"


def test_a_nested_binding_in_brackets_gives_the_index() -> None:
    scope = {"input": {"prompts": ["a", "b", "c"]}, "index": 2}
    assert compile_template("${input.prompts[${index}]}").render(scope) == "c"


def test_a_nested_binding_in_brackets_may_give_a_key() -> None:
    scope = {"jobs": {"first": {"output": {"x": 1}}}, "item": "x"}
    assert compile_template("${jobs.first.output[${item}]}").render(scope) == 1


def test_a_nested_binding_that_gives_no_usable_key_leads_nowhere() -> None:
    scope = {"input": {"prompts": ["a"]}, "index": [0]}
    assert compile_template("${input.prompts[${index}]}").render(scope) is None


def test_job_outputs_are_reached_through_jobs() -> None:
    scope = {"jobs": {"generate-multiple": {"output": {"items": ["x", "y"]}}}, "index": 1}
    text = "${jobs.generate-multiple.output.items[${index}]}"
    assert compile_template(text).render(scope) == "y"


def test_env_item_result_and_context_are_looked_up_like_any_key() -> None:
    scope = {"env": {"HOME": "/h"}, "item": {"id": 1}, "result": "r", "context": {"c": 2}}
    assert compile_template("${env.HOME} ${item.id} ${result} ${context.c}").render(scope) == (
        "/h 1 r 2"
    )


def test_a_dash_in_the_input_matches_an_underscore_in_the_binding() -> None:
    assert render("${input.system_prompt}", input={"system-prompt": "Be brief."}) == "Be brief."


def test_an_underscore_in_the_input_matches_a_dash_in_the_binding() -> None:
    assert render("${input.system-prompt}", input={"system_prompt": "Be brief."}) == "Be brief."


def test_an_exact_input_key_wins_over_a_normalised_one() -> None:
    scope = {"input": {"a-b": "dash", "a_b": "underscore"}}
    assert compile_template("${input.a_b}").render(scope) == "underscore"
    assert compile_template("${input.a-b}").render(scope) == "dash"


def test_dashes_and_underscores_match_at_every_level_under_input() -> None:
    scope = {"input": {"chat-history": [{"user-text": "hi"}]}}
    assert compile_template("${input.chat_history[0].user_text}").render(scope) == "hi"


def test_dashes_and_underscores_stay_distinct_outside_input() -> None:
    scope = {"jobs": {"first-job": {"output": 1}}}
    assert compile_template("${jobs.first_job.output}").render(scope) is None


def test_a_default_applies_when_the_value_is_missing() -> None:
    assert render('${input.role | "helpful assistant"}', input={}) == "helpful assistant"


def test_a_default_applies_when_the_value_is_null() -> None:
    assert render('${input.role | "helpful assistant"}', input={"role": None}) == (
        "helpful assistant"
    )


def test_a_default_does_not_apply_to_falsy_values() -> None:
    assert render("${input.n | 5}", input={"n": 0}) == 0
    assert render('${input.s | "x"}', input={"s": ""}) == ""


def test_a_default_is_cast_with_the_type() -> None:
    assert render("${input.temperature as number | 0.7}", input={}) == 0.7
    assert render("${input.n as integer | ${input.fallback}}", input={"fallback": "4"}) == 4


def test_a_default_with_a_binding_is_rendered_when_used() -> None:
    text = '${input.template | "Generate text about: ${input.topic}"}'
    assert render(text, input={"topic": "tea"}) == "Generate text about: tea"
    assert render(text, input={"template": "Own", "topic": "tea"}) == "Own"


def test_a_structured_default_is_a_fresh_copy_each_time() -> None:
    first = render("${input.xs | [1, 2]}", input={})
    first.append(3)
    assert render("${input.xs | [1, 2]}", input={}) == [1, 2]


def test_a_default_that_is_one_binding_keeps_its_type() -> None:
    assert render("${input.a | ${input.b}}", input={"b": [1]}) == [1]


def test_a_default_that_renders_to_none_leaves_none() -> None:
    assert render("${input.a as number | ${input.b}}", input={}) is None


def test_an_embedded_cast_is_inserted_as_text() -> None:
    assert render("t=${input.t as number}", input={"t": "1"}) == "t=1.0"


def test_an_escaped_binding_renders_literally() -> None:
    assert render("$${input.x} ${input.x}", input={"x": 1}) == "${input.x} 1"


def test_values_are_inserted_and_never_parsed_again() -> None:
    assert render("${input.x}", input={"x": "${input.y}", "y": "no"}) == "${input.y}"
    assert render("say ${input.x}", input={"x": "${env.SECRET}"}, env={"SECRET": "s"}) == (
        "say ${env.SECRET}"
    )


def test_a_stream_type_passes_the_value_through() -> None:
    chunks = iter(["a", "b"])
    assert render("${output as stream/text}", output=chunks) is chunks


def test_a_constant_template_renders_its_text_with_escapes_undone() -> None:
    assert render("plain $${x}") == "plain ${x}"
