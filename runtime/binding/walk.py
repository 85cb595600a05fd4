"""Templates applied to whole YAML values: mappings and lists are walked, and
every string in them is a template."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runtime.binding.parser import compile_template
from runtime.binding.template import Binding


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """`value` with every string rendered; mapping keys are left as they are."""
    if isinstance(value, str):
        return compile_template(value).render(scope)
    if isinstance(value, Mapping):
        return {key: render(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, scope) for item in value]
    if isinstance(value, tuple):
        return tuple(render(item, scope) for item in value)
    return value


def iter_bindings(value: Any) -> Iterator[Binding]:
    """Every binding in `value`, including those nested in defaults and paths."""
    if isinstance(value, str):
        yield from compile_template(value).bindings()
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from iter_bindings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_bindings(item)


def has_bindings(text: str) -> bool:
    """Whether a string holds any binding (`$${` escapes do not count).
    Raises BindingSyntaxError when the string does not parse."""
    return "${" in text and not compile_template(text).is_constant
