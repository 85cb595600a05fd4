"""YAML → plain Python data, remembering the line every key and item came from.

Positions are keyed by the identity of the container that holds a value, so a
value keeps its line when the loader later moves it (e.g. `component:` into
`components: [...]`): only the containers the loader creates itself have no
position, and they fall back to their parent's line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import Location, Problem


@dataclass
class Positions:
    """Lines of keys and items, by the container that holds them."""

    files: dict[int, str] = field(default_factory=dict)
    starts: dict[int, int] = field(default_factory=dict)
    entries: dict[tuple[int, Any], int] = field(default_factory=dict)
    # Keeps every container alive so that `id()` keys stay unique.
    _alive: list[Any] = field(default_factory=list)

    def add_container(self, container: Any, file: str, line: int) -> None:
        self._alive.append(container)
        self.files[id(container)] = file
        self.starts[id(container)] = line

    def add_entry(self, container: Any, key: Any, line: int) -> None:
        self.entries[(id(container), key)] = line

    def locate(self, container: Any, key: Any = None) -> tuple[str | None, int | None]:
        file = self.files.get(id(container))
        line = self.entries.get((id(container), key)) if key is not None else None
        return file, line if line is not None else self.starts.get(id(container))

    def adopt(self, new: Any, like: Any) -> None:
        """Give a container the loader made the position of an existing one."""
        file, line = self.locate(like)
        if file is not None and line is not None:
            self.add_container(new, file, line)

    def copy_of(self, new: dict[Any, Any], like: dict[Any, Any]) -> None:
        """Give a filtered copy of a mapping the positions of the original."""
        self.adopt(new, like)
        for key in new:
            line = self.entries.get((id(like), key))
            if line is not None:
                self.entries[(id(new), key)] = line

    def merge(self, other: Positions) -> None:
        self.files.update(other.files)
        self.starts.update(other.starts)
        self.entries.update(other.entries)
        self._alive.extend(other._alive)


@dataclass
class Document:
    data: Any
    positions: Positions
    warnings: list[Problem]


def load_yaml(path: Path) -> Document:
    """Parse one YAML file. Raises `yaml.YAMLError` with marks on bad syntax."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        quoted = quote_plain_bindings(text)
        if quoted == text:
            raise
        try:
            node = yaml.compose(quoted, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            raise error from None
    positions = Positions()
    warnings: list[Problem] = []
    data = {} if node is None else _build(node, str(path), positions, warnings)
    return Document(data, positions, warnings)


_constructor = yaml.SafeLoader("")


def _build(node: yaml.Node, file: str, positions: Positions, warnings: list[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        _constructor.flatten_mapping(node)  # resolves `<<:` merge keys
        mapping: dict[Any, Any] = {}
        positions.add_container(mapping, file, node.start_mark.line + 1)
        for key_node, value_node in node.value:
            key = _constructor.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = str(key)
            if key in mapping:
                # YAML allows it and PyYAML keeps the last one; the seed documents
                # use it for "# or" alternatives, so warn instead of failing.
                warnings.append(
                    Problem(
                        f"duplicate key '{key}': the later value (line {line}) wins",
                        Location(file, positions.entries[(id(mapping), key)]),
                    )
                )
            value = _build(value_node, file, positions, warnings)
            if isinstance(value, dict | list):
                # A section "starts" on the line of its key: `component:`.
                positions.starts[id(value)] = line
            mapping[key] = value
            positions.add_entry(mapping, key, line)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        items: list[Any] = []
        positions.add_container(items, file, node.start_mark.line + 1)
        for index, item_node in enumerate(node.value):
            items.append(_build(item_node, file, positions, warnings))
            positions.add_entry(items, index, item_node.start_mark.line + 1)
        return items
    return _constructor.construct_object(node, deep=True)


# `key: ${...}` or `- ${...}` written as a plain (unquoted) scalar.
_PLAIN_BINDING = re.compile(r"^(?P<lead>\s*(?:-\s+)?(?:[^\s#'\"{\[][^#]*?:\s+)?)(?P<value>\$\{.*)$")


# A line that opens a block scalar: `key: |`, `- >-`, `key: |2+  # comment`.
_BLOCK_START = re.compile(r"(?:^|:|-)\s+[|>][-+0-9]*\s*(?:#.*)?$")


def quote_plain_bindings(text: str) -> str:
    """Quote unquoted values that are one `${...}` binding.

    YAML forbids `: ` inside a plain scalar, yet model-compose files write
    `text: ${input.template | "Generate text about: ${input.topic}"}` (seed
    003). When a file fails to parse, we quote such values and try again; the
    lines stay where they were, so error lines are unchanged.
    """
    lines = text.split("\n")
    block_indent: int | None = None  # inside a `|` or `>` block: its key's indent
    for number, line in enumerate(lines):
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                continue  # block text is literal: never touch it
            block_indent = None
        if _BLOCK_START.search(line):
            block_indent = indent
            continue
        match = _PLAIN_BINDING.match(line)
        if not match:
            continue
        end = _binding_end(match["value"])
        if end is None:
            continue
        value, rest = match["value"][:end], match["value"][end:]
        if rest.strip() and not rest.lstrip().startswith("#"):
            continue
        escaped = value.replace("'", "''")
        lines[number] = f"{match['lead']}'{escaped}'{rest}"
    return "\n".join(lines)


def _binding_end(value: str) -> int | None:
    """Index just past the `}` closing the binding that starts `value`."""
    depth = 0
    quote: str | None = None
    index = 0
    while index < len(value):
        char = value[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "\"'" and depth == 1:
            quote = char
        elif value.startswith("${", index):
            depth += 1
            index += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return None
