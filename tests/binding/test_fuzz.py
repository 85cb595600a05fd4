"""Properties of the `${...}` language on arbitrary input: any string either
compiles or raises `BindingSyntaxError` at a column inside it; a compiled
template renders against any JSON-like scope to a value or an `InputError`.
Never another exception, never a hang (HYPOTHESIS_PROFILE=long runs more)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.binding import (
    KEYS,
    Template,
    compile_template,
    infer_input_fields,
    iter_bindings,
    render,
)
from runtime.binding.casts import TYPE_NAMES
from runtime.errors import BindingSyntaxError, InputError
from tests.conftest import time_limit

pytestmark = pytest.mark.fuzz

# Pieces of the grammar, so that random strings often get deep into a binding
# instead of failing at its first character.
FRAGMENTS = [
    "${",
    "$${",
    "}",
    ".",
    "[",
    "]",
    "[]",
    "|",
    " | ",
    " as ",
    "as",
    '"',
    "'",
    "\\",
    " ",
    "\n",
    "/",
    ",",
    "-",
    "0",
    "1",
    "-1",
    "name",
    "system-prompt",
    "select/a,b",
    "stream/x",
    "true",
    "null",
    "0.7",
    *KEYS,
    *TYPE_NAMES,
]
binding_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=40).map("".join)

names = st.sampled_from(["a", "b", "name", "system_prompt", "system-prompt", "0", "output"])
types = st.builds(
    lambda name, options, is_list: name + options + is_list,
    st.sampled_from(TYPE_NAMES),
    st.sampled_from(["", "", "/a,b", "/x"]),
    st.sampled_from(["", "", "[]"]),
)
defaults = st.sampled_from(["0", "0.7", "true", "null", "hello", "[1, 2]", '{"a": 1}', ""])


@st.composite
def bindings(draw: st.DrawFn, depth: int = 0) -> str:
    """One `${...}` written the way the grammar allows, often with nesting."""
    nested = st.deferred(lambda: bindings(depth + 1)) if depth < 3 else st.nothing()
    path = draw(
        st.lists(
            names.map(lambda n: "." + n)
            | st.integers(-3, 3).map(lambda i: f"[{i}]")
            | names.map(lambda n: f'["{n}"]')
            | nested.map(lambda b: f"[{b}]"),
            max_size=3,
        )
    )
    type_ = draw(st.none() | types)
    default = draw(
        st.none()
        | defaults
        | st.lists(defaults | nested, min_size=1, max_size=3).map(lambda p: '"' + "".join(p) + '"')
    )
    key = draw(st.sampled_from(KEYS))
    return (
        "${"
        + key
        + "".join(path)
        + (f" as {type_}" if type_ else "")
        + (f" | {default}" if default is not None else "")
        + "}"
    )


templates = st.lists(bindings() | st.text(alphabet="ab :\n", max_size=4), max_size=4).map("".join)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["0", "1", "0.7", "true", "[1, 2]", '{"a": 1}', "a", "b"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "system_prompt", "system-prompt", "a", "b", "0", "output"])
            | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)
scopes = st.fixed_dictionaries(
    {},
    optional={
        "input": json_values,
        "output": json_values,
        "result": json_values,
        "jobs": st.dictionaries(st.sampled_from(["a", "name", "first"]), json_values, max_size=3),
        "env": st.dictionaries(st.sampled_from(["HOME", "name"]), st.text(max_size=5)),
        "index": st.integers(-3, 3),
        "item": json_values,
        "context": json_values,
    },
)


def compiled_or_error(text: str) -> Template | None:
    """The template, or None after checking the syntax error's position."""
    try:
        with time_limit(20):
            return compile_template(text)
    except BindingSyntaxError as error:
        assert 0 <= error.offset <= len(text), (error.offset, len(text))
        assert error.text == text
        assert str(error).endswith(f"at column {error.offset + 1}")
        return None


@given(st.text())
def test_any_text_compiles_or_fails_with_a_column(text: str) -> None:
    compiled_or_error(text)


@given(binding_text | templates)
def test_binding_shaped_text_compiles_or_fails_with_a_column(text: str) -> None:
    template = compiled_or_error(text)
    if template is not None:
        assert template.text == text
        assert template.is_constant == (not list(template.bindings()))
        # The Web UI's form is inferred from any template that compiles.
        infer_input_fields(template.bindings())


@given(binding_text | templates, scopes)
def test_a_compiled_template_renders_to_a_value_or_an_input_error(
    text: str, scope: dict[str, Any]
) -> None:
    template = compiled_or_error(text)
    if template is None:
        return
    try:
        with time_limit(20):
            value = template.render(scope)
    except InputError as error:
        assert str(error)
        return
    if not template.is_whole:
        assert isinstance(value, str)


@given(st.integers(1, 20_000), st.sampled_from(["default", "index", "quoted"]))
def test_deeply_nested_bindings_compile_or_fail_without_recursion_error(
    depth: int, where: str
) -> None:
    opening, closing = {
        "default": ("${input.a | ", "}"),
        "index": ("${input.a[", "]}"),
        "quoted": ('${input.a | "', '"}'),
    }[where]
    text = opening * depth + "${input.b}" + closing * depth
    template = compiled_or_error(text)
    if template is not None:
        with time_limit(20):
            template.render({"input": {"a": [0, 1], "b": 1}})


@given(
    st.recursive(
        binding_text | templates | st.integers() | st.none(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=8,
    ),
    scopes,
)
def test_rendering_a_yaml_value_gives_a_value_or_a_typed_error(value: Any, scope: Any) -> None:
    try:
        with time_limit(20):
            list(iter_bindings(value))
            rendered = render(value, scope)
    except (BindingSyntaxError, InputError):
        return
    # What renders can be sent as JSON: the HTTP layer and the CLI print it.
    json.dumps(rendered, default=str)


# Backtracking and recursion are fast on short input and quadratic (or worse)
# on long runs of the same characters.
RUNS = ["${", "${input", "${input.a", "${input.a | ", '${input.a | "', "[", "${input[", "\\", " "]


@settings(max_examples=max(10, settings.default.max_examples // 5))
@given(st.sampled_from(RUNS), st.integers(1_000, 40_000), st.sampled_from(["", "}", '"}']))
def test_a_long_run_of_one_fragment_compiles_or_fails_in_time(
    fragment: str, count: int, end: str
) -> None:
    template = compiled_or_error("x" + fragment * count + end)
    if template is not None:
        with time_limit(20):
            template.render({"input": {"a": "b"}})
