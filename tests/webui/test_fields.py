"""Inputs as form fields: widgets, first values, and reading them back."""

from __future__ import annotations

from runtime.binding import InputField
from runtime.webui.fields import Reading, Widget, initial_value, read_field, read_form, widget_for


def field(type_: str = "text", default: object = None, options: list[str] | None = None):
    return InputField("x", type_, options, default, required=default is None)


def test_each_type_gets_its_widget() -> None:
    widgets = {
        "text": Widget.TEXTAREA,
        "markdown": Widget.TEXTAREA,
        "string": Widget.LINE,
        "number": Widget.NUMBER,
        "integer": Widget.INTEGER,
        "boolean": Widget.SWITCH,
        "select": Widget.SELECT,
        "json": Widget.JSON,
        "object": Widget.JSON,
        "list": Widget.JSON,
        "text[]": Widget.JSON,
        "integer[]": Widget.JSON,
    }
    assert {t: widget_for(field(t)) for t in widgets} == widgets


def test_defaults_become_the_widgets_first_values() -> None:
    assert initial_value(field("text")) == ""
    assert initial_value(field("text", 3)) == "3"
    assert initial_value(field("number", 0.7)) == 0.7
    assert initial_value(field("integer", "4")) == 4.0
    assert initial_value(field("number")) is None
    assert initial_value(field("boolean")) is False
    assert initial_value(field("boolean", "true")) is True
    assert initial_value(field("select", "b", ["a", "b"])) == "b"
    assert initial_value(field("select", "c", ["a", "b"])) is None
    assert initial_value(field("list", [1, "é"])) == '[1, "é"]'
    assert initial_value(field("json", '{"a": 1}')) == '{"a": 1}'
    assert initial_value(field("json", "plain words")) == '"plain words"'


def test_empty_text_is_not_given_so_the_default_applies() -> None:
    optional = InputField("x", "text", None, "dflt", required=False)
    assert read_field(optional, "  ") == Reading(None)
    assert read_field(field("text"), "") == Reading(error="required")
    assert read_field(field("text"), " keep spaces ") == Reading(" keep spaces ")


def test_numbers_and_integers_are_checked() -> None:
    assert read_field(field("number"), 0.5) == Reading(0.5)
    assert read_field(field("integer"), 3.0) == Reading(3)
    assert read_field(field("integer"), 2.5) == Reading(error="must be a whole number")
    assert read_field(field("number"), "abc") == Reading(error="must be a number")
    assert read_field(field("number"), float("inf")) == Reading(error="must be a number")


def test_a_switch_is_always_given() -> None:
    assert read_field(field("boolean"), False) == Reading(False)


def test_a_select_only_takes_its_options() -> None:
    choice = field("select", options=["a", "b"])
    assert read_field(choice, "a") == Reading("a")
    assert read_field(choice, "z") == Reading(error="must be one of a, b")


def test_json_must_parse_and_be_of_the_inputs_kind() -> None:
    assert read_field(field("json"), '"just a string"') == Reading("just a string")
    assert read_field(field("list"), "[1, 2]") == Reading([1, 2])
    assert read_field(field("number[]"), "[1, 2]") == Reading([1, 2])
    assert read_field(field("object"), '{"a": 1}') == Reading({"a": 1})
    bad = read_field(field("json"), "{oops")
    assert bad.error is not None and bad.error.startswith("not valid JSON: ")
    assert "line 1, column 2" in bad.error
    assert read_field(field("list"), "{}").error == 'must be a JSON list, like ["a", "b"]'
    assert read_field(field("object"), "[]").error == 'must be a JSON object, like {"key": "value"}'


def test_a_form_reads_into_the_given_values_and_the_errors_by_name() -> None:
    fields = [
        InputField("a", "text"),
        InputField("b", "number", default=1.0, required=False),
        InputField("c", "list"),
    ]
    reading = read_form(fields, {"a": "hi", "b": None, "c": "nope"})
    assert reading.values == {"a": "hi"}
    assert reading.errors == {"c": reading.errors["c"]} and not reading.is_valid
