"""The compiled forms: a `Template` is one string split into literal text and
`Binding`s, and a `Binding` is one parsed `${KEY.PATH as TYPE | DEFAULT}`.

They refer to each other (a default is a template, a path may hold a nested
`[${...}]` template), so they live together. Both are immutable: a compiled
template is cached and shared by every run.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from runtime.binding.casts import BindingType, CastError, to_text
from runtime.binding.lookup import Step, lookup
from runtime.errors import InputError

# A path key that can be written after a dot; anything else needs `["..."]`.
_PLAIN_NAME = re.compile(r"[\w-]+")


@dataclass(frozen=True)
class Binding:
    """One `${KEY.PATH as TYPE | DEFAULT}`."""

    key: str  # the root: "input", "jobs", ...
    path: tuple[PathPart, ...] = ()
    type: BindingType | None = None
    default: Template | None = None
    source: str = ""  # the `${...}` as written, for messages
    # The default's value when it holds no bindings: parsed (`0.7` is a float)
    # and already cast to `type`, so a constant default costs nothing per run.
    default_value: Any = field(default=None, compare=False)

    @property
    def has_default(self) -> bool:
        return self.default is not None

    def dotted_path(self) -> str:
        """The path as written after the key: `conversation_history[0].content`."""
        return _format_path(self.path)

    def walk(self) -> Iterator[Binding]:
        """This binding, then those nested in its path and its default."""
        yield self
        for part in self.path:
            if isinstance(part, Template):
                yield from part.bindings()
        if self.default is not None:
            yield from self.default.bindings()

    def resolve(self, scope: Mapping[str, Any]) -> Any:
        """The value this binding stands for: looked up, defaulted, cast."""
        steps = [_concrete_step(part, scope) for part in self.path]
        value = lookup(scope.get(self.key), steps, loose_keys=self.key == "input")
        if value is None and self.default is not None:
            if self.default.is_constant:
                # The template is cached and shared: never hand out its list or dict.
                return copy.deepcopy(self.default_value)
            value = self.default.render(scope)
        if value is None or self.type is None:
            return value
        try:
            return self.type.cast(value)
        except CastError as error:
            raise InputError(
                f"{self._describe(steps, error.suffix)} {error}", name=self._input_name(steps)
            ) from None

    def _describe(self, steps: list[Step], suffix: str) -> str:
        # Names the value the way the user writes it: `input 'x.y'`, `'jobs.a.output'`.
        path = _format_path(steps) + suffix
        if self.key == "input" and path:
            return f"input '{path}'"
        if not path:
            return f"'{self.key}'"
        return f"'{self.key}{path if path.startswith('[') else '.' + path}'"

    def _input_name(self, steps: list[Step]) -> str | None:
        if self.key == "input" and steps and isinstance(steps[0], str):
            return steps[0]
        return None


@dataclass(frozen=True)
class Template:
    """One string of a compose file, compiled: literal text and bindings."""

    text: str  # the source as written
    parts: tuple[str | Binding, ...] = ()  # literal text (escapes undone) and bindings
    is_whole: bool = field(init=False, compare=False)  # one binding: keeps its type
    is_constant: bool = field(init=False, compare=False)  # no bindings at all

    def __post_init__(self) -> None:
        parts = self.parts
        # A YAML block scalar (`key: |`) ends with a newline the author did not
        # mean as part of the value, so `${x}\n` still keeps x's type.
        if len(parts) == 2 and isinstance(parts[1], str) and not parts[1].strip("\r\n"):
            parts = parts[:1]
        object.__setattr__(self, "is_whole", len(parts) == 1 and isinstance(parts[0], Binding))
        object.__setattr__(
            self, "is_constant", not any(isinstance(part, Binding) for part in self.parts)
        )

    def render(self, scope: Mapping[str, Any]) -> Any:
        """The value of a whole-string binding, else the text with values inserted."""
        if self.is_whole:
            return cast(Binding, self.parts[0]).resolve(scope)
        return "".join(
            to_text(part.resolve(scope)) if isinstance(part, Binding) else part
            for part in self.parts
        )

    def bindings(self) -> Iterator[Binding]:
        """Every binding, including those nested in defaults and `[${...}]` paths."""
        for part in self.parts:
            if isinstance(part, Binding):
                yield from part.walk()


# One step of a parsed path: a `.name` or `["key"]`, an `[index]`, or a nested
# `[${...}]` whose rendered value is the key or index.
PathPart = str | int | Template


def _concrete_step(part: PathPart, scope: Mapping[str, Any]) -> Step:
    if not isinstance(part, Template):
        return part
    value = part.render(scope)
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, str | int) else None


def _format_path(parts: Iterable[PathPart | None]) -> str:
    text = ""
    for part in parts:
        if part is None:  # a nested binding that rendered to no usable key
            text += "[?]"
        elif isinstance(part, Template):
            text += f"[{part.text}]"
        elif isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_NAME.fullmatch(part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text.removeprefix(".")
