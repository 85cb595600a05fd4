"""`as TYPE`: the casts and the errors they raise at render time."""

from typing import Any

import pytest

from runtime.binding import compile_template
from runtime.errors import InputError


def cast(type_: str, value: Any) -> Any:
    return compile_template(f"${{input.v as {type_}}}").render({"input": {"v": value}})


def cast_error(text: str, scope: dict[str, Any]) -> InputError:
    with pytest.raises(InputError) as caught:
        compile_template(text).render(scope)
    return caught.value


@pytest.mark.parametrize(("value", "result"), [(1, 1.0), (0.5, 0.5), ("0.7", 0.7), (" 2 ", 2.0)])
def test_number_gives_a_float(value: Any, result: float) -> None:
    assert cast("number", value) == result
    assert type(cast("number", value)) is float


@pytest.mark.parametrize(("value", "result"), [(3, 3), (3.0, 3), ("42", 42), ("-1", -1)])
def test_integer_accepts_ints_integral_floats_and_digit_strings(value: Any, result: int) -> None:
    assert cast("integer", value) == result
    assert type(cast("integer", value)) is int


@pytest.mark.parametrize(
    ("value", "result"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("FALSE", False),
        ("Yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
    ],
)
def test_boolean_accepts_the_usual_spellings(value: Any, result: bool) -> None:
    assert cast("boolean", value) is result


@pytest.mark.parametrize("type_", ["text", "string", "markdown"])
def test_text_types_give_the_value_as_text(type_: str) -> None:
    assert cast(type_, "hi") == "hi"
    assert cast(type_, 5) == "5"
    assert cast(type_, True) == "true"
    assert cast(type_, {"a": 1}) == '{"a": 1}'


@pytest.mark.parametrize("type_", ["json", "object"])
def test_json_parses_a_string_and_keeps_anything_else(type_: str) -> None:
    assert cast(type_, '{"a": [1]}') == {"a": [1]}
    assert cast(type_, {"a": 1}) == {"a": 1}
    assert cast(type_, 3) == 3


def test_list_accepts_a_list_or_a_json_array_string() -> None:
    assert cast("list", [1, 2]) == [1, 2]
    assert cast("list", "[1, 2]") == [1, 2]


def test_select_gives_the_value_as_text_when_it_is_an_option() -> None:
    assert cast("select/formal,casual", "casual") == "casual"
    assert cast("select/1,2", 2) == "2"


def test_a_list_suffix_casts_every_item() -> None:
    assert cast("number[]", ["1", 2]) == [1.0, 2.0]
    assert cast("integer[]", "[1, 2]") == [1, 2]


def test_none_is_never_cast() -> None:
    for type_ in ("number", "integer", "boolean", "text", "json", "list", "select/a"):
        assert cast(type_, None) is None


def test_a_failed_number_cast_names_the_input() -> None:
    error = cast_error("${input.temperature as number}", {"input": {"temperature": "abc"}})
    assert str(error) == "input 'temperature' must be a number, got 'abc'"
    assert error.name == "temperature"


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        ("number", True, "input 'v' must be a number, got true"),
        ("number", "nan", "input 'v' must be a number, got 'nan'"),
        ("number", [1], "input 'v' must be a number, got [1]"),
        ("integer", "1.5", "input 'v' must be an integer, got '1.5'"),
        ("integer", 1.5, "input 'v' must be an integer, got 1.5"),
        ("integer", False, "input 'v' must be an integer, got false"),
        ("boolean", "maybe", "input 'v' must be true or false, got 'maybe'"),
        ("boolean", 2, "input 'v' must be true or false, got 2"),
        ("json", "{bad", "input 'v' must be valid JSON, got '{bad'"),
        ("list", "a, b", "input 'v' must be a list, got 'a, b'"),
        ("list", {"a": 1}, "input 'v' must be a list, got {\"a\": 1}"),
        ("select/formal,casual", "rude", "input 'v' must be one of formal, casual, got 'rude'"),
        ("number[]", 5, "input 'v' must be a list, got 5"),
        ("number[]", [1, "x"], "input 'v[1]' must be a number, got 'x'"),
    ],
)
def test_cast_errors_say_what_was_expected_and_what_came(
    type_: str, value: Any, message: str
) -> None:
    error = cast_error(f"${{input.v as {type_}}}", {"input": {"v": value}})
    assert str(error) == message
    assert error.name == "v"


def test_a_cast_error_deep_in_the_input_names_the_whole_path() -> None:
    error = cast_error("${input.x.y as number}", {"input": {"x": {"y": "abc"}}})
    assert str(error) == "input 'x.y' must be a number, got 'abc'"
    assert error.name == "x"


def test_a_cast_error_names_the_index_a_nested_binding_gave() -> None:
    error = cast_error("${input.xs[${index}] as integer}", {"input": {"xs": ["a"]}, "index": 0})
    assert str(error) == "input 'xs[0]' must be an integer, got 'a'"


def test_a_cast_error_outside_input_names_the_key_path() -> None:
    scope = {"jobs": {"first": {"output": "abc"}}}
    error = cast_error("${jobs.first.output as number}", scope)
    assert str(error) == "'jobs.first.output' must be a number, got 'abc'"
    assert error.name is None


def test_a_cast_error_on_a_bare_key_names_the_key() -> None:
    error = cast_error("${output as integer}", {"output": "x"})
    assert str(error) == "'output' must be an integer, got 'x'"


def test_a_cast_error_in_embedded_text_is_raised_too() -> None:
    error = cast_error("Temp: ${input.t as number}", {"input": {"t": "hot"}})
    assert str(error) == "input 't' must be a number, got 'hot'"


def test_a_default_with_bindings_that_fails_its_cast_names_the_binding() -> None:
    error = cast_error("${input.t as number | ${input.u}}", {"input": {"u": "hot"}})
    assert str(error) == "input 't' must be a number, got 'hot'"
