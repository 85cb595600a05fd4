"""Raw (normalised) data → Structs, with every problem located.

Unknown keys are found by our own walk (msgspec stops at the first one and
cannot suggest a fix); wrong types come from msgspec, whose `$.a[0].b` path we
map back to the YAML line.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, TypeVar, Union

import msgspec

from runtime.config.source import Positions
from runtime.errors import Location, Problem

S = TypeVar("S", bound=msgspec.Struct)


def suggest(key: str, known: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _struct_members(tp: Any) -> list[type[msgspec.Struct]]:
    """The Struct types a field's annotation allows, in order."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return [tp]
    if typing.get_origin(tp) in (Union, types.UnionType):
        return [m for arg in typing.get_args(tp) for m in _struct_members(arg)]
    return []


def _item_type(tp: Any) -> Any:
    """For `list[X]` (or a union holding one), X; else None."""
    for candidate in [tp, *typing.get_args(tp)]:
        if typing.get_origin(candidate) is list and typing.get_args(candidate):
            return typing.get_args(candidate)[0]
    return None


class Converter:
    def __init__(self, positions: Positions, problems: list[Problem]) -> None:
        self.positions = positions
        self.problems = problems

    def located(self, message: str, container: Any, key: Any, path: str) -> None:
        file, line = self.positions.locate(container, key)
        self.problems.append(Problem(message, Location(file, line, path or None)))

    def unknown_keys(self, data: Any, struct: type[msgspec.Struct], path: str) -> int:
        """Report keys `struct` does not have, recursively. Returns the count."""
        if not isinstance(data, dict):
            return 0
        hints = typing.get_type_hints(struct)
        fields = {f.name: hints[f.name] for f in msgspec.structs.fields(struct)}
        count = 0
        for key, value in data.items():
            key_path = f"{path}.{key}" if path else str(key)
            if key not in fields:
                self.located(f"unknown key '{key}'{suggest(str(key), fields)}", data, key, path)
                count += 1
                continue
            members = _struct_members(fields[key])
            if members and isinstance(value, dict):
                count += self.unknown_keys(value, members[0], key_path)
            item = _item_type(fields[key])
            item_members = _struct_members(item) if item is not None else []
            if item_members and isinstance(value, list):
                for index, entry in enumerate(value):
                    label = entry.get("id", index) if isinstance(entry, dict) else index
                    count += self.unknown_keys(entry, item_members[0], f"{key_path}[{label}]")
        return count

    def convert(self, data: Any, struct: type[S], path: str) -> S | None:
        """Check keys, then types; None (with problems recorded) when it fails."""
        if not isinstance(data, dict):
            self.located(f"expected a mapping, got {_kind(data)}", data, None, path)
            return None
        if self.unknown_keys(data, struct, path):
            return None
        try:
            return msgspec.convert(data, struct, strict=False)
        except msgspec.ValidationError as error:
            self.type_error(data, str(error), path)
            return None

    def type_error(self, data: Any, message: str, path: str) -> None:
        text, _, where = message.partition(" - at `$")
        parts = re.findall(r"\.([^.\[`]+)|\[(\d+)\]", where.rstrip("`"))
        container: Any = data
        key: Any = None
        display = path
        for name, index in parts:
            if key is not None:
                container = container[key]
            key = name if name else int(index)
            if name:
                display = f"{display}.{name}" if display else name
            else:
                entry = container[key] if isinstance(container, list) else None
                label = entry.get("id", key) if isinstance(entry, dict) else key
                display = f"{display}[{label}]"
        self.located(_reword(text), container, key, display)


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def _reword(msgspec_message: str) -> str:
    """msgspec says "Expected `int`, got `str`"; say it the way YAML users write."""
    message = msgspec_message.replace("`", "'")
    message = re.sub(r"Expected '(.*?)', got '(.*?)'", r"expected \1, got \2", message)
    message = message.replace("Object missing required field", "missing required key")
    message = message.replace("Invalid enum value", "invalid value")
    return message[:1].lower() + message[1:]
