"""Failed attempts at the API key, per client address: after `limit`
failures within `window` seconds, a client waits until the oldest of them is
that old before it may try again. Guessing a key then takes `limit` tries a
window, however fast the client asks. Used by the API's key check and by the
Web UI's login (its form and its `?token=` links)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

MAX_FAILURES = 5
WINDOW_SECONDS = 60.0
# Clients forgotten at once when this many are remembered, so addresses that
# failed once and left do not pile up.
_SWEEP_AT = 1024


class FailureLimiter:
    def __init__(
        self,
        limit: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> int | None:
        """Whole seconds `client` must wait before its next try, or None
        when it may try now."""
        failures = self._recent(client)
        if len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[0] + self.window - self.clock()))

    def fail(self, client: str) -> None:
        if len(self._failures) >= _SWEEP_AT:
            for stale in [c for c, times in self._failures.items() if not self._recent(c)]:
                del self._failures[stale]
        self._failures.setdefault(client, deque(maxlen=self.limit)).append(self.clock())

    def succeed(self, client: str) -> None:
        """A right key: the client's failures are forgotten."""
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= self.clock() - self.window:
            failures.popleft()
        return failures


def too_many_failures(seconds: int) -> str:
    return f"too many wrong API keys from this address: try again in {seconds} s"
