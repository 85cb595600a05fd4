"""A fake component layer for the runner's tests: these are about scheduling
(order, overlap, repeats, bindings between jobs), not about the model."""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from runtime.config import ComposeConfig
from runtime.workflow import RunContext
from runtime.workflow.runner import ActionResult

Handler = Callable[[Any], Awaitable[Any]]


@dataclass
class Call:
    job_id: str
    component_id: str
    action_id: str | None
    input: Any
    started: float
    finished: float | None = None
    cancelled: bool = False


@dataclass
class FakeComponents:
    """Implements the runner's ComponentRunner. Each call is recorded, and its
    start, end or cancellation appended to `log`. A handler per job id decides
    what the call does (await events, sleep, fail); by default it echoes."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    contexts: list[RunContext] = field(default_factory=list)

    async def run_action(
        self, component_id: str, action_id: str | None, input: Any, context: RunContext, job_id: str
    ) -> Any:
        call = Call(job_id, component_id, action_id, input, started=time.perf_counter())
        self.calls.append(call)
        self.contexts.append(context)
        self.log.append(("start", job_id))
        try:
            handler = self.handlers.get(job_id)
            result = await handler(input) if handler else {"job": job_id, "input": input}
        except asyncio.CancelledError:
            call.cancelled = True
            self.log.append(("cancelled", job_id))
            raise
        call.finished = time.perf_counter()
        self.log.append(("end", job_id))
        return result if isinstance(result, ActionResult) else ActionResult(result)

    def position(self, event: str, job_id: str) -> int:
        return self.log.index((event, job_id))

    def inputs(self, job_id: str) -> list[Any]:
        return [call.input for call in self.calls if call.job_id == job_id]


@pytest.fixture
def fake() -> FakeComponents:
    return FakeComponents()


# The fake never reads the component; its binding has a default so that it
# adds no required input of its own.
COMPONENT = """
component:
  id: model
  type: model
  task: text-generation
  model: ./unused.gguf
  text: ${input.prompt | "unused"}
"""


@pytest.fixture
def compose(compose: Callable[[str], ComposeConfig]) -> Callable[[str], ComposeConfig]:
    """tests/conftest.py's `compose`, except that files that declare no component
    get one (`model`) that the fake stands in for."""

    def load(text: str) -> ComposeConfig:
        text = textwrap.dedent(text)
        if not re.search(r"^components?:", text, re.MULTILINE):
            text += COMPONENT
        return compose(text)

    return load
