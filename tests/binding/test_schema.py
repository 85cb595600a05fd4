"""Inferring the input schema from the `${input.*}` bindings."""

from runtime.binding import (
    InputField,
    Omittable,
    compile_template,
    infer_input_fields,
    iter_bindings,
)


def fields(*texts: str) -> list[InputField]:
    return infer_input_fields(iter_bindings(list(texts)))


def test_a_plain_input_is_required_text() -> None:
    assert fields("${input.user_prompt}") == [InputField("user_prompt", "text", None, None, True)]


def test_a_default_makes_a_field_optional_and_gives_its_value() -> None:
    assert fields("${input.temperature as number | 0.7}") == [
        InputField("temperature", "number", None, 0.7, False)
    ]


def test_a_quoted_default_is_the_text_inside_the_quotes() -> None:
    assert fields('${input.role | "helpful assistant"}') == [
        InputField("role", "text", None, "helpful assistant", False)
    ]


def test_a_select_field_lists_its_options() -> None:
    assert fields("${input.tone as select/formal, casual | casual}") == [
        InputField("tone", "select", ["formal", "casual"], "casual", False)
    ]


def test_a_list_cast_appends_brackets_to_the_type() -> None:
    assert fields("${input.scores as number[]}")[0].type == "number[]"


def test_a_default_with_bindings_makes_the_field_optional_without_a_value() -> None:
    (template, _topic) = fields('${input.template | "Generate text about: ${input.topic}"}')
    assert template == InputField("template", "text", None, None, False)


def test_a_binding_only_read_inside_a_default_is_optional() -> None:
    (_template, topic) = fields('${input.template | "Generate text about: ${input.topic}"}')
    assert topic == InputField("topic", "text", None, None, False)


def test_a_field_is_optional_only_if_every_occurrence_can_do_without_it() -> None:
    assert fields("${input.x | 1}", "${input.x | 2}")[0].required is False
    # The first would render null: a default elsewhere does not help it.
    assert fields("${input.x}", "${input.x | 1}")[0] == InputField("x", "text", None, 1, True)
    assert fields("${input.x}", "${input.x as number}")[0].required is True


def only(text: str) -> Omittable:
    (binding,) = compile_template(text).bindings()
    return Omittable(binding)


def test_an_omittable_place_does_not_make_its_input_required() -> None:
    assert infer_input_fields([only("${input.system_prompt}")]) == [
        InputField("system_prompt", "text", None, None, False)
    ]


def test_an_input_read_in_an_omittable_place_and_elsewhere_stays_required() -> None:
    (binding,) = compile_template("${input.system_prompt}").bindings()
    uses = [only("${input.system_prompt}"), binding]
    assert infer_input_fields(uses)[0].required is True


def test_the_type_comes_from_the_first_occurrence_with_a_cast() -> None:
    assert fields("${input.x}", "${input.x as integer}", "${input.x as number}")[0].type == (
        "integer"
    )


def test_the_default_comes_from_the_first_constant_default() -> None:
    assert fields("${input.x | ${env.X}}", "${input.x | 2}", "${input.x | 3}")[0].default == 2


def test_fields_keep_their_first_seen_order() -> None:
    names = [f.name for f in fields("${input.b} ${input.a}", "${input.c} ${input.b}")]
    assert names == ["b", "a", "c"]


def test_dash_and_underscore_spellings_are_one_field_named_as_first_seen() -> None:
    result = fields("${input.system-prompt | 'y'}", "${input.system_prompt | 'x'}")
    assert result == [InputField("system-prompt", "text", None, "y", False)]


def test_a_deep_path_names_its_first_segment_and_asks_for_json() -> None:
    assert fields("${input.conversation_history[0].content}") == [
        InputField("conversation_history", "json", None, None, True)
    ]


def test_a_cast_on_a_deep_path_does_not_type_the_field() -> None:
    field = fields("${input.options.temperature as number | 0.5}")[0]
    assert (field.type, field.default, field.required) == ("json", None, False)


def test_the_bare_input_and_other_keys_contribute_nothing() -> None:
    assert fields("${input}", "${output}", "${jobs.a.output}", "${env.HOME}") == []


def test_an_input_index_of_the_whole_input_contributes_nothing() -> None:
    assert fields("${input[0]}", "${input[${index}]}") == []


def test_bindings_inside_an_index_count_as_inputs() -> None:
    assert fields("${input.items[${input.i}]}")[1] == InputField("i", "text", None, None, True)
