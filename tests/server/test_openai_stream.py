"""Streaming under /v1: back-pressure, a client that hangs up, an error after
the stream started."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from runtime.engine.types import FinishReason, Generation, GenerationRequest, GenerationResult
from runtime.errors import RuntimeFailure
from runtime.server import openai_routes
from runtime.server.openai_stream import BackgroundGeneration, TextEvent
from runtime.workflow.context import RunContext
from tests.server.conftest import LiveServer


class Chatty:
    """A fake `ModelComponents` whose generation sends `count` deltas."""

    def __init__(self, count: int, fail: bool = False) -> None:
        self.count = count
        self.fail = fail
        self.sent = 0

    async def generate(
        self, component_id: str, request: GenerationRequest, context: RunContext
    ) -> GenerationResult:
        for index in range(self.count):
            await context.delta(component_id, f"t{index} ", True)
            self.sent += 1
        if self.fail:
            raise RuntimeFailure("the model fell over")
        return GenerationResult("done", FinishReason.STOP)


def start_chatty(components: Chatty) -> BackgroundGeneration:
    """A streaming generation with room for only four queued events."""
    request = GenerationRequest(prompt="x")
    return BackgroundGeneration(components, "c", request, streaming=True, queue_size=4)  # type: ignore[arg-type]


async def test_a_reader_that_does_not_read_holds_the_generation_back() -> None:
    components = Chatty(100)
    generation = start_chatty(components)
    await asyncio.sleep(0.05)
    assert components.sent <= 5
    events = [await generation.next() for _ in range(101)]
    assert events[:2] == [TextEvent("t0 "), TextEvent("t1 ")]
    assert isinstance(events[-1], GenerationResult)


async def test_cancelling_stops_a_generation_waiting_for_its_reader() -> None:
    components = Chatty(100)
    generation = start_chatty(components)
    await asyncio.sleep(0.05)
    generation.cancel()
    await asyncio.gather(generation.task, return_exceptions=True)
    assert generation.task.cancelled() and generation.context.cancel.is_cancelled


def data_events(lines: list[str]) -> list[Any]:
    return [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]


def test_an_error_after_the_stream_started_is_an_error_event_then_done(
    client_for: Callable[..., TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_for("quickstart")
    components = client.app.state.service.components  # type: ignore[attr-defined]
    monkeypatch.setattr(components, "generate", Chatty(2, fail=True).generate)
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "__component__",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
        },
    )
    assert response.status_code == 200
    events = data_events(response.text.splitlines())
    assert events[-1] == "[DONE]"
    *chunks, error = [json.loads(event) for event in events[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "t0 "},
        {"content": "t1 "},
    ]
    assert error == {
        "error": {
            "message": "the model fell over",
            "type": "server_error",
            "param": None,
            "code": "runtime_error",
        }
    }


def test_a_responses_stream_that_fails_midway_ends_with_error_then_response_failed(
    client_for: Callable[..., TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_for("quickstart")
    components = client.app.state.service.components  # type: ignore[attr-defined]
    monkeypatch.setattr(components, "generate", Chatty(2, fail=True).generate)
    response = client.post(
        "/v1/responses", json={"model": "__component__", "input": "Hi", "stream": True}
    )
    assert response.status_code == 200
    events = [json.loads(event) for event in data_events(response.text.splitlines())]
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "error",
        "response.failed",
    ]
    error, failed = events[-2:]
    assert error["message"] == "the model fell over" and error["code"] == "runtime_error"
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "the model fell over"}
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> list[BackgroundGeneration]:
    """Every generation the routes start, held, so that only the server's own
    cancel (not the garbage collector reclaiming an abandoned task) stops it."""
    generations: list[BackgroundGeneration] = []

    class Held(BackgroundGeneration):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            generations.append(self)

    monkeypatch.setattr(openai_routes, "BackgroundGeneration", Held)
    return generations


LONG_STORY = {
    "model": "__component__",
    "max_tokens": 2000,
    "seed": 1,
    "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
}


def test_a_client_that_hangs_up_mid_stream_cancels_the_generation(
    client_for: Callable[..., TestClient],
    monkeypatch: pytest.MonkeyPatch,
    held: list[BackgroundGeneration],
) -> None:
    client = client_for("quickstart")
    service = client.app.state.service  # type: ignore[attr-defined]
    engine = client.portal.call(service.components.engine, "__component__")  # type: ignore[union-attr]
    submitted: list[Generation] = []
    submit = engine.submit

    def spy(request: GenerationRequest) -> Generation:
        submitted.append(submit(request))
        return submitted[-1]

    monkeypatch.setattr(engine, "submit", spy)
    with client.stream(
        "POST", "/v1/chat/completions", json={**LONG_STORY, "stream": True}
    ) as response:
        lines = response.iter_lines()
        read = 0
        for line in lines:
            read += line.startswith("data: ")
            if read == 3:  # the role chunk and two deltas
                break
    (generation,) = submitted
    deadline = time.monotonic() + 10
    while not generation.done():
        assert time.monotonic() < deadline, "the generation was not stopped"
        time.sleep(0.02)
    result = client.portal.call(generation.result)  # type: ignore[union-attr]
    assert generation.is_cancelled
    assert result.finish_reason == FinishReason.CANCELLED
    assert result.usage.completion_tokens < 2000
    assert held[0].task.cancelled()


def test_a_client_that_hangs_up_before_a_plain_answer_cancels_the_generation(
    live_server: Callable[..., LiveServer],
    monkeypatch: pytest.MonkeyPatch,
    held: list[BackgroundGeneration],
) -> None:
    server = live_server("quickstart")

    async def forever(*args: Any) -> GenerationResult:
        await asyncio.sleep(60)
        raise AssertionError("not cancelled")

    monkeypatch.setattr(server.app.state.service.components, "generate", forever)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/chat/completions", json=LONG_STORY, timeout=0.3)
    deadline = time.monotonic() + 5
    while not (held and held[0].task.done()):
        assert time.monotonic() < deadline, "the generation was not stopped"
        time.sleep(0.02)
    assert held[0].task.cancelled()
