"""Raw (normalised) data → Structs, with every problem located.

Unknown keys are found by our own walk (msgspec stops at the first one and
cannot suggest a fix); wrong types come from msgspec, whose `$.a[0].b` path we
map back to the YAML line.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from typing import Any, TypeVar, Union

import msgspec

from runtime.config.positions import Positions
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


@functools.cache
def _field_types(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """A Struct's keys and their annotations (slow to compute: cached); a
    tagged Struct's tag is a key too."""
    hints = typing.get_type_hints(struct)
    fields = {f.name: hints[f.name] for f in msgspec.structs.fields(struct)}
    tag_field = struct.__struct_config__.tag_field
    return {tag_field: str, **fields} if tag_field else fields


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
        fields = _field_types(struct)
        count = 0
        for key, value in data.items():
            key_path = f"{path}.{key}" if path else str(key)
            if key not in fields:
                self.located(f"unknown key '{key}'{suggest(str(key), fields)}", data, key, path)
                count += 1
                continue
            members = _struct_members(fields[key])
            if members and isinstance(value, dict):
                count += self._unknown_in(value, members, key_path)
            item = _item_type(fields[key])
            item_members = _struct_members(item) if item is not None else []
            if item_members and isinstance(value, list):
                for index, entry in enumerate(value):
                    entry_at = entry_path(key_path, value, index)
                    count += self._unknown_in(entry, item_members, entry_at)
        return count

    def _unknown_in(self, data: Any, members: list[type[msgspec.Struct]], path: str) -> int:
        """Unknown keys of a value of one of `members`: a tagged union's
        value is checked against the member its tag names (an unknown tag is
        reported as such)."""
        if len(members) > 1 and members[0].__struct_config__.tag_field and isinstance(data, dict):
            member = self.tagged_member(data, members, path, common_keys=False)
            return 1 if member is None else self.unknown_keys(data, member, path)
        return self.unknown_keys(data, members[0], path)

    def tagged_member(
        self, data: dict[Any, Any], union: Any, path: str, *, common_keys: bool = True
    ) -> Any:
        """The Struct of a tagged union that `data`'s tag names; None, with the
        problem recorded, when the tag is missing or unknown (and, with
        `common_keys`, keys that no member has)."""
        members = union if isinstance(union, list) else _struct_members(union)
        tag_field = members[0].__struct_config__.tag_field
        by_tag = {str(m.__struct_config__.tag): m for m in members}
        tag = data.get(tag_field)
        if isinstance(tag, str) and tag in by_tag:
            return by_tag[tag]
        # Still report unknown keys: a typo may be why the tag is missing.
        if common_keys:
            self.unknown_keys(data, _common_base(members), path)
        known = ", ".join(by_tag)
        self.located(
            f"unknown {tag_field} {tag!r} (supported: {known})"
            if tag
            else f"missing required key '{tag_field}' (one of: {known})",
            data,
            tag_field if tag else None,
            path,
        )
        return None

    def convert(
        self, data: Any, struct: type[S], path: str, at: tuple[Any, Any] = (None, None)
    ) -> S | None:
        """Check keys, then types; None (with problems recorded) when it fails.
        `struct` may be a tagged union of Structs: the tag picks the member.
        `at` (container, key) locates `data` when it is not a mapping."""
        if not isinstance(data, dict):
            container, key = at if at[0] is not None else (data, None)
            self.located(f"expected a mapping, got {kind(data)}", container, key, path)
            return None
        if not isinstance(struct, type):
            struct = self.tagged_member(data, struct, path)
            if struct is None:
                return None
        if self.unknown_keys(data, struct, path):
            return None
        try:
            return msgspec.convert(data, struct, strict=False)
        except msgspec.ValidationError as error:
            self.type_error(data, str(error), path)
            return None

    def type_error(self, data: Any, message: str, path: str) -> None:
        text, _, where = message.partition(" - at `")
        prefix = "a key: " if where.startswith("key` in `") else ""  # a key of the wrong type
        where = where.removeprefix("key` in `")
        parts = re.findall(r"\.([^.\[`]+)|\[(\d+)\]", where.removeprefix("$").rstrip("`"))
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
                display = entry_path(display, container, key)
        self.located(prefix + _reword(text), container, key, display)


def entry_path(list_path: str, entries: Any, index: int) -> str:
    """How an entry of a list is named in a problem: by its id, else its index.
    A component's one action is `action`, the shorthand the file most likely
    wrote (the loader's checks name it the same way)."""
    if list_path.endswith(".actions") and isinstance(entries, list) and len(entries) == 1:
        return list_path.removesuffix("s")
    entry = entries[index] if isinstance(entries, list) else None
    label = entry.get("id", index) if isinstance(entry, dict) else index
    return f"{list_path}[{label}]"


def _common_base(members: list[type[msgspec.Struct]]) -> type[msgspec.Struct]:
    """The nearest Struct every member of a union derives from."""
    return next(c for c in members[0].__mro__ if all(issubclass(m, c) for m in members))


def kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


# msgspec's type names, as YAML users know them.
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
    "date": "a date (quote it to keep it as text)",
    "datetime": "a date and time (quote it to keep it as text)",
}


def _words(types: str) -> str:
    """`int | str` → "an integer or a string"."""
    words = [_TYPE_WORDS.get(name.strip(), name.strip()) for name in types.split("|")]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _reword(msgspec_message: str) -> str:
    """msgspec says "Expected `int`, got `str`"; say it the way YAML users write."""
    message = re.sub(
        r"Expected `(.*?)`, got `(.*?)`",
        lambda m: f"expected {_words(m[1])}, got {_words(m[2])}",
        msgspec_message,
    )
    message = message.replace("`", "'")
    message = message.replace("Object missing required field", "missing required key")
    message = message.replace("Invalid enum value", "invalid value")
    return message[:1].lower() + message[1:]
