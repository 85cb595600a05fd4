"""Fixtures for running the tasks on the real embedded model.

The model is loaded once per session: `engine_factory` is a caching
`EngineFactory` that each test hands to its own `ModelPool` (created on the
test's event loop). An engine serves any event loop, so sharing it across
tests is safe; the session closes it at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runtime.config import ComposeConfig
from runtime.engine.logprobs import TokenLogprob
from runtime.engine.types import Engine, GenerationRequest, GenerationResult, ModelSpec
from runtime.workflow import RunContext, WorkflowRunner

if TYPE_CHECKING:
    from runtime.tasks.components import ModelComponents


@pytest.fixture(scope="session")
def engine_factory(embedded_model_path: Path) -> Iterator[Callable[[ModelSpec], Engine]]:
    from runtime.engine import BatchedEngine

    engines: dict[ModelSpec, BatchedEngine] = {}
    lock = threading.Lock()

    def load(spec: ModelSpec) -> Engine:
        with lock:
            if spec not in engines:
                # One slot whatever the component asks: requests run one at a
                # time, so each one's deltas arrive together (as they did here
                # before `parallel` chose the engine).
                engines[spec] = BatchedEngine.load(replace(spec, parallel=1))
            return engines[spec]

    yield load
    for engine in engines.values():
        engine.shutdown()


@dataclass
class Recorder:
    """A RunListener that keeps every delta and result."""

    deltas: list[tuple[str, str, bool]] = field(default_factory=list)
    reasoning_deltas: list[tuple[str, str]] = field(default_factory=list)
    results: list[tuple[str, GenerationResult]] = field(default_factory=list)

    def on_delta(
        self,
        job_id: str,
        text: str,
        streaming: bool,
        reasoning: bool = False,
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> None:
        if reasoning:
            self.reasoning_deltas.append((job_id, text))
        else:
            self.deltas.append((job_id, text, streaming))

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        self.results.append((job_id, result))

    @property
    def text(self) -> str:
        """The answer's deltas, joined."""
        return "".join(text for _, text, _ in self.deltas)

    @property
    def reasoning(self) -> str:
        return "".join(text for _, text in self.reasoning_deltas)


class ObservedGeneration:
    def __init__(self, inner: Any, owner: ObservedEngine) -> None:
        self.inner = inner
        self.owner = owner
        self.open = True

    def __aiter__(self) -> Any:
        return self.inner.__aiter__()

    async def result(self) -> GenerationResult:
        try:
            return await self.inner.result()
        finally:
            if self.open:
                self.open = False
                self.owner.in_flight -= 1

    def cancel(self) -> None:
        self.inner.cancel()


class ObservedEngine:
    """A real engine that also records the requests it gets and how many are
    in flight (submitted, result not yet taken) at most."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.requests: list[GenerationRequest] = []
        self.in_flight = 0
        self.most_in_flight = 0

    @property
    def info(self) -> Any:
        return self.inner.info

    @property
    def max_queue(self) -> int:
        return self.inner.max_queue

    @max_queue.setter
    def max_queue(self, value: int) -> None:
        self.inner.max_queue = value

    def submit(self, request: GenerationRequest) -> ObservedGeneration:
        generation = ObservedGeneration(self.inner.submit(request), self)
        self.requests.append(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return generation

    async def close(self) -> None:
        pass  # the session owns the real engine


@dataclass
class Harness:
    config: ComposeConfig
    components: ModelComponents
    runner: WorkflowRunner
    engine: ObservedEngine | None = None  # set when the pool loads the model
    loads: int = 0

    async def run(
        self, workflow_id: str | None = None, input: Any = None, listener: Any = None
    ) -> Any:
        return await self.runner.run(workflow_id, input, RunContext(listener=listener))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def harness(compose, engine_factory) -> Callable[[str], Harness]:
    """YAML → a WorkflowRunner over ModelComponents over a fresh ModelPool whose
    engines are the session's model, observed."""
    from runtime.engine import ModelPool
    from runtime.tasks.components import ModelComponents

    def build(text: str) -> Harness:
        config = compose(text)

        def observed_factory(spec: ModelSpec) -> Engine:
            built.loads += 1
            built.engine = ObservedEngine(engine_factory(spec))
            return built.engine

        components = ModelComponents(config, ModelPool(observed_factory))
        built = Harness(config, components, WorkflowRunner(config, components))
        return built

    return build
