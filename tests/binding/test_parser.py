"""Parsing `${KEY.PATH as TYPE | DEFAULT}` into Template and Binding."""

import pytest

from runtime.binding import Binding, BindingType, Template, compile_template
from runtime.errors import BindingSyntaxError


def only_binding(text: str) -> Binding:
    (binding,) = compile_template(text).parts
    assert isinstance(binding, Binding)
    return binding


def test_a_plain_key_has_no_path_type_or_default() -> None:
    binding = only_binding("${input}")
    assert binding.key == "input"
    assert binding.path == ()
    assert binding.type is None
    assert binding.default is None
    assert binding.has_default is False


@pytest.mark.parametrize(
    "key", ["input", "output", "result", "jobs", "env", "index", "item", "context"]
)
def test_every_documented_key_is_accepted(key: str) -> None:
    assert only_binding(f"${{{key}}}").key == key


def test_a_dotted_path_is_split_into_names() -> None:
    assert only_binding("${jobs.first.output}").path == ("first", "output")


def test_names_may_contain_dashes() -> None:
    assert only_binding("${jobs.generate-multiple.output}").path == ("generate-multiple", "output")


def test_indexes_may_be_negative_and_chain_with_names() -> None:
    binding = only_binding("${input.conversation_history[0].content[-1]}")
    assert binding.path == ("conversation_history", 0, "content", -1)


def test_a_quoted_key_in_brackets_is_a_name() -> None:
    assert only_binding("""${input["system prompt"]['a\\'b']}""").path == ("system prompt", "a'b")


def test_a_nested_binding_in_brackets_is_a_template() -> None:
    binding = only_binding("${input.prompts[${index}]}")
    name, nested = binding.path
    assert name == "prompts"
    assert isinstance(nested, Template)
    assert nested.text == "${index}"
    assert nested.is_whole


def test_the_dotted_path_reads_as_written_without_the_key() -> None:
    assert only_binding("${input.system_prompt}").dotted_path() == "system_prompt"
    assert (
        only_binding("${input.conversation_history[0].content}").dotted_path()
        == "conversation_history[0].content"
    )
    assert only_binding("${input.prompts[${index}]}").dotted_path() == "prompts[${index}]"
    assert only_binding('${input["a b"]}').dotted_path() == '["a b"]'
    assert only_binding("${input}").dotted_path() == ""


def test_whitespace_is_allowed_around_every_token() -> None:
    binding = only_binding('${  input.temperature   as   number  |   "0.5"  }')
    assert binding.path == ("temperature",)
    assert binding.type == BindingType("number")
    assert binding.default_value == 0.5


def test_a_type_without_options() -> None:
    assert only_binding("${input.prompt as text}").type == BindingType("text")


def test_select_keeps_its_option_string_and_splits_choices() -> None:
    binding_type = only_binding("${input.tone as select/formal, casual ,terse}").type
    assert binding_type == BindingType("select", "formal, casual ,terse")
    assert binding_type.choices == ("formal", "casual", "terse")


def test_a_stream_type_keeps_its_sub_type() -> None:
    assert only_binding("${output as stream/text}").type == BindingType("stream", "text")


def test_a_list_suffix_marks_the_type_as_mapped_over_a_list() -> None:
    assert only_binding("${input.xs as number[]}").type == BindingType("number", None, True)
    assert only_binding("${input.xs as select/a,b[]}").type == BindingType("select", "a,b", True)


def test_a_quoted_default_loses_its_quotes() -> None:
    binding = only_binding('${input.role | "helpful assistant"}')
    assert binding.has_default
    assert binding.default_value == "helpful assistant"
    assert binding.default is not None and binding.default.text == "helpful assistant"


def test_a_single_quoted_default_loses_its_quotes_too() -> None:
    assert only_binding("${input.role | 'helpful assistant'}").default_value == "helpful assistant"


def test_a_closing_brace_inside_a_quoted_default_does_not_end_the_binding() -> None:
    template = compile_template('${input.json | "{\\"a\\": 1}"} after')
    binding, rest = template.parts
    assert isinstance(binding, Binding)
    assert binding.default_value == '{"a": 1}'
    assert rest == " after"


def test_backslash_escapes_in_a_quoted_default_are_undone() -> None:
    assert only_binding(r'${input.x | "a\nb\t\"c\" \\ \q"}').default_value == 'a\nb\t"c" \\ \\q'


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("${input.x | 0.7}", 0.7),
        ("${input.x | 5}", 5),
        ("${input.x | true}", True),
        ("${input.x | false}", False),
        ("${input.x | null}", None),
        ("${input.x |   helpful assistant  }", "helpful assistant"),
        ("${input.x | }", ""),
        ("${input.x | NaN}", "NaN"),
    ],
)
def test_an_unquoted_default_reads_like_a_yaml_scalar(text: str, value: object) -> None:
    binding = only_binding(text)
    assert binding.has_default
    assert binding.default_value == value
    assert type(binding.default_value) is type(value)


def test_a_constant_default_is_cast_with_the_type() -> None:
    assert only_binding("${input.temperature as number | 1}").default_value == 1.0
    assert only_binding('${input.n as integer | "3"}').default_value == 3


def test_a_default_may_hold_a_binding() -> None:
    binding = only_binding('${input.template | "Generate text about: ${input.topic}"}')
    assert binding.default is not None
    assert not binding.default.is_constant
    assert binding.default.text == "Generate text about: ${input.topic}"
    assert binding.default_value is None


def test_a_double_dollar_is_a_literal_binding_start() -> None:
    template = compile_template("cost: $${input.x} and $5")
    assert template.is_constant
    assert template.parts == ("cost: ${input.x} and $5",)


def test_text_without_bindings_is_constant() -> None:
    template = compile_template("just $ text {}")
    assert template.is_constant
    assert not template.is_whole


def test_exactly_one_binding_is_whole() -> None:
    assert compile_template("${input.x}").is_whole


def test_a_trailing_newline_from_a_block_scalar_still_counts_as_whole() -> None:
    assert compile_template("${input.x}\n").is_whole


def test_surrounding_text_or_spaces_make_a_binding_embedded() -> None:
    assert not compile_template(" ${input.x}").is_whole
    assert not compile_template("${input.x} ").is_whole
    assert not compile_template("${input.x}${input.y}").is_whole


def test_the_same_string_compiles_to_the_same_template() -> None:
    assert compile_template("${input.cached}") is compile_template("${input.cached}")


def test_bindings_lists_nested_ones_after_their_parent() -> None:
    template = compile_template(
        '${input.prompts[${index}]} ${input.template | "About ${input.topic}"}'
    )
    assert [b.source for b in template.bindings()] == [
        "${input.prompts[${index}]}",
        "${index}",
        '${input.template | "About ${input.topic}"}',
        "${input.topic}",
    ]


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("${", "unterminated '${': no closing '}'", 0),
        ("abc ${input.x", "unterminated '${': no closing '}'", 4),
        ("${input.x | ${input.y}", "unterminated '${': no closing '}'", 0),
        ("${}", "expected a key after '${'", 2),
        ("${ }", "expected a key after '${'", 3),
        (
            "${inputs.x}",
            "unknown key 'inputs'; expected one of input, output, result, reasoning, jobs, env, "
            "index, item, context",
            2,
        ),
        ("${input.}", "expected a name after '.'", 8),
        ("${input.x[}", "expected an index, a quoted key or '${...}' after '['", 10),
        ("${input.x[abc]}", "expected an index, a quoted key or '${...}' after '['", 10),
        ("${input.x[0}", "unexpected '}'; expected ']'", 11),
        ('${input["a}', "unterminated quoted key", 8),
        ("${input.x y}", "unexpected 'y'; expected 'as TYPE', '| DEFAULT' or '}'", 10),
        ("${input.x as}", "expected a type after 'as'", 12),
        (
            "${input.x as float}",
            "unknown type 'float'; expected one of text, string, markdown, number, integer, "
            "boolean, json, object, list, select, stream",
            13,
        ),
        ("${input.x as select}", "the type 'select' needs its options, as in 'select/a,b'", 19),
        ("${input.x as select/}", "expected options after 'select/'", 20),
        ("${input.x as number/a}", "the type 'number' takes no options", 19),
        ("${input.x as number[}", "expected '[]' after the type", 19),
        ("${input.x as number y}", "unexpected 'y'; expected '| DEFAULT' or '}'", 20),
        ('${input.x | "abc}', "unterminated quoted default", 12),
        ('${input.x | "a" b}', "unexpected 'b'; expected '}' after the default", 16),
        ("${input.x as number | abc}", "the default must be a number, got 'abc'", 22),
        ("${input.x as select/a,b | c}", "the default must be one of a, b, got 'c'", 26),
    ],
)
def test_syntax_errors_name_the_problem_and_its_offset(
    text: str, message: str, offset: int
) -> None:
    with pytest.raises(BindingSyntaxError) as caught:
        compile_template(text)
    assert caught.value.reason == message
    assert caught.value.offset == offset
    assert caught.value.text == text


def test_a_syntax_error_inside_a_default_points_into_the_whole_string() -> None:
    text = 'say ${input.x | "about ${input.}"}'
    with pytest.raises(BindingSyntaxError) as caught:
        compile_template(text)
    assert str(caught.value) == f"expected a name after '.' in {text!r} at column 32"
    assert caught.value.offset == 31
