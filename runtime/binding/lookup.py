"""Walking a binding's path through the values in scope.

A path that leads nowhere (a missing key, an index out of range, a step into a
string or a number) yields None rather than an error: whether a value is
required is for the caller to decide, and a `| DEFAULT` fills the gap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# A concrete path step: a key, an index, or None when a nested `[${...}]`
# rendered to something that cannot address anything.
Step = str | int | None

_INDEX = re.compile(r"-?\d+")


def lookup(root: Any, steps: Iterable[Step], *, loose_keys: bool = False) -> Any:
    """Follow `steps` from `root`. With `loose_keys`, `-` and `_` in mapping keys
    are the same character (input names arrive both ways, e.g. from curl)."""
    value = root
    for step in steps:
        if value is None or step is None:
            return None
        value = _step(value, step, loose_keys)
    return value


def _step(value: Any, step: str | int, loose_keys: bool) -> Any:
    if isinstance(value, Mapping):
        return _get_key(value, step, loose_keys)
    if isinstance(value, list | tuple):
        if isinstance(step, str):
            # `.0` and a nested binding that rendered "0" both mean index 0.
            if not _INDEX.fullmatch(step):
                return None
            step = int(step)
        if -len(value) <= step < len(value):
            return value[step]
    return None


def _get_key(mapping: Mapping[Any, Any], key: str | int, loose_keys: bool) -> Any:
    if key in mapping:
        return mapping[key]
    if isinstance(key, int):
        # JSON objects only have string keys, so `[0]` on a mapping means "0".
        return mapping.get(str(key))
    if loose_keys:
        wanted = normalize_name(key)
        for name, item in mapping.items():
            if isinstance(name, str) and normalize_name(name) == wanted:
                return item
    return None


def normalize_name(name: str) -> str:
    """The form in which `system-prompt` and `system_prompt` are one name."""
    return name.replace("-", "_")
