"""YAML → plain Python data, remembering the line every key and item came
from (in `Positions`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runtime.config.limits import DepthLimitedLoader, check_graph, read_text
from runtime.config.positions import Positions
from runtime.errors import ConfigError, Location, Problem


@dataclass
class Document:
    data: Any
    positions: Positions
    warnings: list[Problem]
    empty: bool = False  # no YAML document at all: an empty file or only comments


def load_yaml(path: Path) -> Document:
    """Parse one YAML file. Raises ConfigError, located, when it cannot."""
    file = str(path)
    text = read_text(file)
    node = _compose(text, file)
    positions = Positions()
    warnings: list[Problem] = []
    if node is None:
        data: Any = {}
        positions.add_container(data, file, 1)
        return Document(data, positions, warnings, empty=True)
    check_graph(node, file)
    builder = _Builder(file, positions, warnings)
    try:
        data = builder.build(node)
    except yaml.MarkedYAMLError as error:
        raise ConfigError(_yaml_problem(error, file)) from None
    return Document(data, positions, warnings)


def _compose(text: str, file: str) -> yaml.Node | None:
    try:
        try:
            return yaml.compose(text, Loader=DepthLimitedLoader)
        except yaml.MarkedYAMLError as error:
            quoted = quote_plain_bindings(text)
            if quoted == text:
                raise
            try:
                return yaml.compose(quoted, Loader=DepthLimitedLoader)
            except yaml.YAMLError:
                raise error from None
    except yaml.MarkedYAMLError as error:
        raise ConfigError(_yaml_problem(error, file)) from None
    except yaml.reader.ReaderError as error:
        # Text was decoded already: the reader refused a control character.
        line = text.count("\n", 0, error.position) + 1
        raise ConfigError(
            Problem(
                f"invalid YAML: the character U+{error.character:04X} is not allowed "
                "in YAML (is this a text file?)",
                Location(file, line),
            )
        ) from None


def _yaml_problem(error: yaml.MarkedYAMLError, file: str) -> Problem:
    """PyYAML's message, pointed at the line to fix, with a hint for the
    mistakes people make most."""
    problem, context = error.problem or "", error.context or ""
    mark = error.problem_mark or error.context_mark
    reason = problem or context or "invalid YAML"
    if problem == "second occurrence" and error.context_mark:  # a message in two halves
        reason = (
            context.removesuffix("; first occurrence")
            + f" (first on line {error.context_mark.line + 1})"
        )
    elif "quoted scalar" in context and "end of stream" in problem and error.context_mark:
        mark = error.context_mark
        reason = "a quoted value starts on this line but its closing quote is missing"
    elif context.startswith("while parsing a flow") and problem.startswith("expected ','"):
        mark = error.context_mark or mark
        bracket = "[" if "sequence" in context else "{"
        where = f" on line {error.problem_mark.line + 1}" if error.problem_mark else ""
        reason = f"the '{bracket}' on this line is never closed ({problem}{where})"
    elif problem == "but found another document":
        reason = "the file holds a second YAML document after '---'; a compose file is one document"
    elif "<block end>" in problem:
        reason += " (check this line's indentation against the lines above it)"
    elif problem == "mapping values are not allowed here":
        reason += " (quote a value that contains ': ', or check the indentation)"
    elif "'\\t'" in problem:
        reason += " (YAML indentation must use spaces, not tabs)"
    return Problem(f"invalid YAML: {reason}", Location(file, mark.line + 1 if mark else None))


class _Builder:
    """YAML nodes → plain data, recording positions. A constructor per file:
    PyYAML's keeps every node it has built, so a shared one would grow."""

    def __init__(self, file: str, positions: Positions, warnings: list[Problem]) -> None:
        self.file = file
        self.positions = positions
        self.warnings = warnings
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node)
        if isinstance(node, yaml.SequenceNode):
            items: list[Any] = []
            self.positions.add_container(items, self.file, node.start_mark.line + 1)
            for index, item_node in enumerate(node.value):
                items.append(self.build(item_node))
                self.positions.add_entry(items, index, item_node.start_mark.line + 1)
            return items
        return self.scalar(node)

    def mapping(self, node: yaml.MappingNode) -> dict[Any, Any]:
        file, positions = self.file, self.positions
        self.constructor.flatten_mapping(node)  # resolves `<<:` merge keys
        mapping: dict[Any, Any] = {}
        positions.add_container(mapping, file, node.start_mark.line + 1)
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = self.scalar(key_node)
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = str(key)
            if key in mapping:
                # YAML allows it and PyYAML keeps the last one; the seed documents
                # use it for "# or" alternatives, so warn instead of failing.
                self.warnings.append(
                    Problem(
                        f"duplicate key '{key}': the later value (line {line}) wins",
                        Location(file, positions.entries[(id(mapping), key)]),
                    )
                )
            value = self.build(value_node)
            if isinstance(value, dict | list):
                # A section "starts" on the line of its key: `component:`.
                positions.starts[id(value)] = line
            mapping[key] = value
            positions.add_entry(mapping, key, line)
        return mapping

    def scalar(self, node: yaml.Node) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            # `title: 2024-01-01` means text in a compose file; a date object
            # would fail the schema, or later fail to serialise as JSON.
            return node.value
        if node.tag == "tag:yaml.org,2002:binary":
            raise yaml.constructor.ConstructorError(
                None, None, "binary values (!!binary) are not supported", node.start_mark
            )
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError:
            raise
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as error:
            # PyYAML's constructors fail with plain exceptions on values that
            # are not of their tag's type (`!!int x`, `!!float ''`).
            kind = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid {kind}", node.start_mark
            ) from error
        if isinstance(value, float) and not math.isfinite(value):
            # No setting takes one, and JSON cannot carry it: as a workflow
            # output it would fail every response that includes it.
            raise ConfigError(
                Problem(
                    f"{node.value} is not a finite number, which no setting takes and "
                    "JSON cannot carry (quote it to mean text)",
                    Location(self.file, node.start_mark.line + 1),
                )
            )
        return value


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
