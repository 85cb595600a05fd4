"""The `as TYPE` part of a binding: the type names and the casts they perform.

Casts are forgiving about representation (the Web UI and curl send everything
as strings, so `"0.7"` is a fine number) and strict about meaning (`"abc"` is
not a number, and neither is `true`). A failed cast raises `CastError`, which
the binding turns into an `InputError` naming the value's path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


class CastError(Exception):
    """A value does not fit a type. `expected` reads after "must be"; `suffix`
    is the index path inside the value when a `[]` cast failed on one item."""

    def __init__(self, expected: str, value: Any, suffix: str = "") -> None:
        self.expected = expected
        self.value = value
        self.suffix = suffix
        super().__init__(f"must be {expected}, got {describe(value)}")


def to_text(value: Any) -> str:
    """How a value reads when it is inserted into text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def describe(value: Any) -> str:
    """A value as an error message quotes it: strings quoted, the rest as JSON."""
    if isinstance(value, str):
        return repr(value)
    return to_text(value) if value is not None else "null"


def _as_number(value: Any) -> float:
    # bool is an int subclass, but `true` as a temperature is a mistake.
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float (JSON allows it)
            raise CastError("a number", value) from None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise CastError("a number", value) from None
    else:
        raise CastError("a number", value)
    if not math.isfinite(number):
        raise CastError("a number", value)
    return number


def _as_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise CastError("an integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise CastError("an integer", value)


def _as_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise CastError("true or false", value)


def _as_text(value: Any) -> str:
    return to_text(value)


def _as_json(value: Any) -> Any:
    # Only strings need decoding; a value that is already structured is kept.
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise CastError("valid JSON", value) from None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
        if isinstance(decoded, list):
            return decoded
    raise CastError("a list", value)


def _unchanged(value: Any) -> Any:
    return value


# Every type name `as` accepts; `select` and `stream` are handled with options.
_CASTS: dict[str, Callable[[Any], Any]] = {
    "text": _as_text,
    "string": _as_text,
    "markdown": _as_text,
    "number": _as_number,
    "integer": _as_integer,
    "boolean": _as_boolean,
    "json": _as_json,
    "object": _as_json,
    "list": _as_list,
    "select": _as_text,
    "stream": _unchanged,
}
TYPE_NAMES: tuple[str, ...] = tuple(_CASTS)
# Types whose name may be followed by `/options`; `select` requires them.
TYPES_WITH_OPTIONS = ("select", "stream")


@dataclass(frozen=True)
class BindingType:
    """A parsed `as TYPE`: `select/a,b` is name "select", options "a,b"."""

    name: str
    options: str | None = None  # the raw text after the slash
    is_list: bool = False  # a `[]` suffix: cast each item of a list

    @property
    def choices(self) -> tuple[str, ...]:
        """The options of a `select`, split on commas."""
        if not self.options:
            return ()
        return tuple(c for c in (part.strip() for part in self.options.split(",")) if c)

    def __str__(self) -> str:
        text = self.name if self.options is None else f"{self.name}/{self.options}"
        return text + "[]" if self.is_list else text

    def cast(self, value: Any) -> Any:
        """Convert a value to this type; None is never cast and stays None."""
        if value is None:
            return None
        if not self.is_list:
            return self._cast_one(value)
        items = _as_list(value)
        result = []
        for index, item in enumerate(items):
            try:
                result.append(self._cast_one(item))
            except CastError as error:
                raise CastError(error.expected, error.value, f"[{index}]{error.suffix}") from None
        return result

    def _cast_one(self, value: Any) -> Any:
        if value is None:
            return None
        result = _CASTS[self.name](value)
        if self.name == "select" and result not in self.choices:
            raise CastError(f"one of {', '.join(self.choices)}", value)
        return result
