"""Durations ("30s", "10m", "1h", "500ms", or seconds), sizes ("1MB",
"512KB", or bytes) and keep-alive times (a duration, or -1 for ever) as
compose files write them."""

from __future__ import annotations

import math
import re

# Matched against stripped text: a `\s*` at each end would compete with the
# one before the unit, which is quadratic on long runs of spaces.
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|k|m|g)?", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_BYTES = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
    # model-compose's one-letter units ("50M") are binary.
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    None: 1,
}


def parse_duration(value: str | int | float) -> float:
    """Seconds. Raises ValueError with a message for the user."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 10m or 1h, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number of seconds, got {value}")
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return float(value)
    match = _DURATION.fullmatch(value.strip())
    if not match:
        raise ValueError(f"expected a duration like 30s, 10m or 1h, got {value!r}")
    return float(match[1]) * _SECONDS[match[2]]


def parse_keep_alive(value: str | int | float | None) -> float | None:
    """Seconds a model stays loaded without requests; None: for ever. As
    Ollama's `keep_alive`: null or a negative value (-1, "-1", "-1m") keeps it
    loaded, 0 unloads it as soon as it is idle. Raises ValueError with a
    message for the user."""
    if value is None:
        return None
    try:
        if isinstance(value, str) and value.strip().startswith("-"):
            return None if parse_duration(value.strip()[1:]) > 0 else 0.0
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            return None
        return parse_duration(value)
    except ValueError:
        raise ValueError(
            "expected a duration like 30s, 5m or 1h, a number of seconds, "
            f"or -1 to stay loaded, got {value!r}"
        ) from None


def parse_size(value: str | int) -> int:
    """Bytes. Raises ValueError with a message for the user."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 1MB or 512KB, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a size must be at least 1 byte, got {value}")
        return value
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"expected a size like 1MB or 512KB, got {value!r}")
    unit = match[2].lower() if match[2] else None
    return int(float(match[1]) * _BYTES[unit])
