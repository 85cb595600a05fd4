"""Rendering and scanning whole YAML values."""

import pytest

from runtime.binding import has_bindings, iter_bindings, render
from runtime.errors import BindingSyntaxError


def test_render_walks_mappings_and_lists_and_keeps_keys() -> None:
    value = {
        "messages": [{"role": "user", "content": "${input.q}"}],
        "params": {"temperature": "${input.t as number | 0.7}", "max_tokens": 64},
        "${input.q}": True,
    }
    assert render(value, {"input": {"q": "hi"}}) == {
        "messages": [{"role": "user", "content": "hi"}],
        "params": {"temperature": 0.7, "max_tokens": 64},
        "${input.q}": True,
    }


def test_render_leaves_non_string_scalars_alone() -> None:
    assert render([1, 2.5, None, False], {}) == [1, 2.5, None, False]


def test_render_does_not_change_its_argument() -> None:
    value = {"a": ["${input.x}"]}
    render(value, {"input": {"x": 1}})
    assert value == {"a": ["${input.x}"]}


def test_iter_bindings_finds_every_binding_in_a_value() -> None:
    value = {"a": ["${input.x} ${input.y[${index}]}"], "b": {"c": "${output}"}, "d": 3}
    assert [b.source for b in iter_bindings(value)] == [
        "${input.x}",
        "${input.y[${index}]}",
        "${index}",
        "${output}",
    ]


def test_iter_bindings_ignores_mapping_keys() -> None:
    assert list(iter_bindings({"${input.x}": 1})) == []


def test_has_bindings_tells_templates_from_plain_text() -> None:
    assert has_bindings("a ${input.x}")
    assert not has_bindings("plain text with $ and {braces}")
    assert not has_bindings("escaped $${input.x}")


def test_has_bindings_raises_on_a_malformed_string() -> None:
    with pytest.raises(BindingSyntaxError):
        has_bindings("${input.x")
