"""Streaming stop-sequence matcher.

Text arrives in pieces (one per token, or fewer), and a stop sequence may span
several pieces. The matcher emits text as early as possible and holds back only
the longest tail that could still turn out to be the start of a stop sequence,
so the emitted pieces always concatenate to exactly the final text, and the stop
sequence itself is never emitted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class StopCheck:
    text: str  # safe to emit now
    stopped: bool  # a stop sequence was found; nothing more will be emitted


class StopMatcher:
    def __init__(self, stops: Iterable[str]) -> None:
        # Empty strings would match everywhere; they mean "no stop" in practice.
        self._stops = tuple(dict.fromkeys(s for s in stops if s))
        self._held = ""
        self._stopped = False

    @property
    def stops(self) -> tuple[str, ...]:
        return self._stops

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def held(self) -> str:
        """Text held back because it may be the start of a stop sequence."""
        return self._held

    def feed(self, piece: str) -> StopCheck:
        if self._stopped:
            return StopCheck("", True)
        if not self._stops:
            return StopCheck(piece, False)
        buffer = self._held + piece
        # The earliest stop wins: everything before it is the final text.
        first = min(
            (pos for pos in (buffer.find(s) for s in self._stops) if pos >= 0),
            default=-1,
        )
        if first >= 0:
            self._held = ""
            self._stopped = True
            return StopCheck(buffer[:first], True)
        keep = self._partial_suffix_length(buffer)
        self._held = buffer[len(buffer) - keep :]
        return StopCheck(buffer[: len(buffer) - keep], False)

    def flush(self) -> str:
        """Generation ended without a stop: release the held-back tail."""
        if self._stopped:
            return ""
        held, self._held = self._held, ""
        return held

    def _partial_suffix_length(self, buffer: str) -> int:
        """Length of the longest suffix of `buffer` that is a proper prefix of a stop."""
        longest = min(len(buffer), max(len(s) for s in self._stops) - 1)
        for size in range(longest, 0, -1):
            tail = buffer[-size:]
            if any(s.startswith(tail) for s in self._stops):
                return size
        return 0
