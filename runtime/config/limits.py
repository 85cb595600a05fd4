"""Limits that keep a broken or hostile compose file from hanging or crashing
the loader: the file's size, how deep its values nest, and how much its YAML
aliases (`*name`) may expand it ("billion laughs"). Real files are a few KB,
nest under ten levels and use aliases sparingly, so each limit is far above
what they need and far below what would take seconds or gigabytes.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from runtime.errors import ConfigError, Location, Problem

# Loading takes seconds per MB (PyYAML's pure-Python parser keeps the marks
# that give every error its line); 1 MB is some 18,000 workflows.
MAX_FILE_BYTES = 1_000_000
# Python recursion stays far from its limit: the composer, the loader and the
# checks each recurse once or twice per level.
MAX_DEPTH = 64
# Values that aliases may add on top of those written out.
MAX_ALIAS_VALUES = 10_000


def read_text(path: str) -> str:
    """The file's text, or ConfigError when it is too big or not UTF-8."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
            size = os.fstat(stream.fileno()).st_size
    except OSError as error:
        raise ConfigError(
            Problem(f"the file cannot be read: {error.strerror or error}", Location(path))
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            Problem(
                f"the file is {max(size, len(data)):,} bytes; a compose file may be at most "
                f"{MAX_FILE_BYTES:,} bytes",
                Location(path),
            )
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(Problem("the file is UTF-16 text; save it as UTF-8", Location(path, 1)))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - data.rfind(b"\n", 0, error.start)
        raise ConfigError(
            Problem(
                f"the file is not UTF-8 text: byte 0x{data[error.start]:02x} "
                f"at column {column} cannot be decoded",
                Location(path, line),
            )
        ) from None


class DepthLimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing to compose values nested deeper than
    MAX_DEPTH (its composer recurses once per level)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"values are nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def check_graph(root: yaml.Node, file: str) -> None:
    """Refuse aliases that refer to themselves, or that make the file nest too
    deep or expand too much once they are replaced by what they name.

    The composed file is a graph (an alias is the very node it names), so this
    walks it once, iteratively, measuring the expanded size and height of
    every distinct node; merge keys (`<<: *a`) count as the values they copy.
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the path from the root to here
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            heights[key] = 1 + max((heights[id(child)] for child in children), default=0)
        elif key in open_nodes:
            _fail("this anchor's value refers to itself through an alias", node, file)
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(_children(node)))
    if heights[id(root)] > MAX_DEPTH:
        node = _descend(root, lambda n: heights[id(n)], MAX_DEPTH)
        _fail(f"aliases nest values more than {MAX_DEPTH} levels deep", node, file)
    added = sizes[id(root)] - len(sizes)
    if added > MAX_ALIAS_VALUES:
        node = _descend(root, lambda n: sizes[id(n)], MAX_ALIAS_VALUES)
        _fail(
            f"aliases (*name) expand this value to {sizes[id(node)]:,} values; "
            f"they may add at most {MAX_ALIAS_VALUES:,} values to a file",
            node,
            file,
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _descend(node: yaml.Node, measure: Any, limit: int) -> yaml.Node:
    """The deepest node on the heaviest path whose measure still exceeds
    `limit`: where the expansion happens, to point the user at."""
    while True:
        heavier = [child for child in _children(node) if measure(child) > limit]
        if not heavier:
            return node
        node = max(heavier, key=measure)


def _fail(message: str, node: yaml.Node, file: str) -> None:
    raise ConfigError(Problem(f"invalid YAML: {message}", Location(file, node.start_mark.line + 1)))
