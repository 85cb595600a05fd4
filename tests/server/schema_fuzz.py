"""What tests/server/test_schema_fuzz.py needs besides schemathesis: the
compose file it serves, the bound on what a generated request may cost, the
tallies behind its figures, and the profile (how many examples per
operation) chosen by the environment."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

# The compose file served (its comments say why it looks as it does).
COMPOSE_FILE = Path(__file__).parents[1] / "data" / "schema_fuzz" / "model-compose.yml"

# The most tokens a generated request may ask for, as the compose file's
# `max_output_length`: the fuzzer tests the HTTP layer, not the model, and an
# uncapped `max_tokens` would fill the context on every request.
MAX_TOKENS = 4

TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def clamp_tokens(body: Any) -> None:
    """Lower every valid token count above MAX_TOKENS to MAX_TOKENS, and ask
    for MAX_TOKENS when a /v1 body names none (chat would otherwise run to
    the end of the context). A lower valid count keeps a valid request valid;
    wrong types and negative numbers stay as generated, for the server to
    refuse. Schemathesis re-checks a case's validity after such an edit."""
    if not isinstance(body, dict):
        return
    for name in TOKEN_FIELDS:
        if too_many(body.get(name)):
            body[name] = MAX_TOKENS
    if "model" in body and not any(name in body for name in TOKEN_FIELDS):
        body["max_tokens"] = MAX_TOKENS
    inputs = body.get("input")
    if isinstance(inputs, dict) and too_many(inputs.get("max_tokens")):
        inputs["max_tokens"] = MAX_TOKENS


def too_many(value: Any) -> bool:
    """A valid token count (an integer, or a float without a fraction, as
    JSON allows) above MAX_TOKENS."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return float(value).is_integer() and value > MAX_TOKENS


@dataclass
class StatusTally:
    """ASGI wrapper counting the statuses the app answered, so the figures
    include the requests schemathesis's own checks send."""

    app: ASGIApp
    statuses: Counter[int] = field(default_factory=Counter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses[int(message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counting)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


@dataclass
class OperationTally:
    """Per operation: the cases sent, their statuses, the time they took,
    and how many answered with an event stream."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    streams: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def record(self, label: str, status: int, content_type: str, seconds: float) -> None:
        self.cases[label] += 1
        self.statuses.setdefault(label, Counter())[status] += 1
        self.streams[label] += content_type.startswith("text/event-stream")
        self.seconds[label] += seconds

    def table(self) -> str:
        lines = [
            "| operation | cases | event streams | statuses | seconds |",
            "| --- | ---: | ---: | --- | ---: |",
        ]
        for label, cases in self.cases.most_common():
            statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses[label].items()))
            lines.append(
                f"| {label} | {cases} | {self.streams[label]} | {statuses} "
                f"| {self.seconds[label]:.1f} |"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class Profile:
    """How hard to fuzz: `fast` in CI, `long` from scripts/fuzz-api."""

    name: str
    max_examples: int
    derandomize: bool


def profile() -> Profile:
    """`MODEL_COMPOSE_FUZZ_EXAMPLES=N` (scripts/fuzz-api) selects the long
    profile, N examples per operation from a random seed; otherwise the fast
    one, derandomized so that CI sends the same cases every time."""
    examples = os.environ.get("MODEL_COMPOSE_FUZZ_EXAMPLES")
    if examples:
        return Profile("long", int(examples), derandomize=False)
    return Profile("fast", 20, derandomize=True)
