"""Where each key and item of the loaded files was written.

Positions are keyed by the identity of the container that holds a value, so a
value keeps its line when the loader later moves it (e.g. `component:` into
`components: [...]`): only the containers the loader creates itself have no
position, and they fall back to their parent's line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Positions:
    """Lines of keys and items, by the container that holds them."""

    files: dict[int, str] = field(default_factory=dict)
    starts: dict[int, int] = field(default_factory=dict)
    entries: dict[tuple[int, Any], int] = field(default_factory=dict)
    # An entry written in another file than its container: a key that a later
    # `-f` file merged into a mapping of an earlier one.
    entry_files: dict[tuple[int, Any], str] = field(default_factory=dict)
    # Keeps every container alive so that `id()` keys stay unique.
    _alive: list[Any] = field(default_factory=list)

    def add_container(self, container: Any, file: str, line: int) -> None:
        self._alive.append(container)
        self.files[id(container)] = file
        self.starts[id(container)] = line

    def add_entry(self, container: Any, key: Any, line: int, file: str | None = None) -> None:
        self.entries[(id(container), key)] = line
        if file is not None and file != self.files.get(id(container)):
            self.entry_files[(id(container), key)] = file
        else:
            self.entry_files.pop((id(container), key), None)

    def copy_entry(self, new: Any, new_key: Any, old: Any, old_key: Any) -> None:
        """Give `new[new_key]` the position of `old[old_key]`, if it has one."""
        line = self.entries.get((id(old), old_key))
        if line is not None:
            self.add_entry(new, new_key, line, self.locate(old, old_key)[0])

    def locate(self, container: Any, key: Any = None) -> tuple[str | None, int | None]:
        file = self.files.get(id(container))
        line = self.entries.get((id(container), key)) if key is not None else None
        if line is None:
            return file, self.starts.get(id(container))
        return self.entry_files.get((id(container), key), file), line

    def adopt(self, new: Any, like: Any) -> None:
        """Give a container the loader made the position of an existing one."""
        file, line = self.locate(like)
        if file is not None and line is not None:
            self.add_container(new, file, line)

    def copy_of(self, new: dict[Any, Any], like: dict[Any, Any]) -> None:
        """Give a filtered copy of a mapping the positions of the original."""
        self.adopt(new, like)
        for key in new:
            self.copy_entry(new, key, like, key)

    def merge(self, other: Positions) -> None:
        self.files.update(other.files)
        self.starts.update(other.starts)
        self.entries.update(other.entries)
        self.entry_files.update(other.entry_files)
        self._alive.extend(other._alive)
