"""The streaming edge on a tiny app: the first event chooses JSON or a
stream, a quiet stream is pinged, a client that hangs up first cancels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from runtime.server import streaming
from runtime.server.streaming import Disconnected, EventQueue, respond, until_disconnected

END = "end"


def app_for(*texts: str, gap: float = 0.0) -> FastAPI:
    """POST /: the texts as deltas `gap` seconds apart, then END; a first
    text "refused" answers a 400 instead of a stream."""
    app = FastAPI()

    async def produce(events: EventQueue) -> str:
        for index, text in enumerate(texts):
            if index:
                await asyncio.sleep(gap)
            await events.on_delta("job", text, True)
        return END

    async def rest(first: Any, events: EventQueue) -> AsyncIterator[Any]:
        event = first
        while event != END:
            yield event
            event = await events.next_or_ping()
        yield "[END]"

    def answer(first: Any, events: EventQueue) -> Response | AsyncIterator[Any]:
        if first == {"job_id": "job", "text": "refused"}:
            return JSONResponse({"error": "refused"}, 400)
        return rest(first, events)

    @app.post("/")
    async def stream(request: Request) -> Response:
        events = EventQueue()
        events.end_with(produce(events))
        return await respond(events, request, lambda first: answer(first, events))

    return app


def test_a_stream_that_flows_is_its_events_and_nothing_else() -> None:
    response = TestClient(app_for("a", "b")).post("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.text == (
        'data: {"job_id": "job", "text": "a"}\n\n'
        'data: {"job_id": "job", "text": "b"}\n\n'
        "data: [END]\n\n"
    )


def test_a_stream_that_goes_quiet_is_pinged_with_a_comment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streaming, "PING_SECONDS", 0.05)
    text = TestClient(app_for("a", "b", gap=0.3)).post("/").text
    blocks = text.split("\n\n")
    assert blocks[0] == 'data: {"job_id": "job", "text": "a"}'
    assert ": ping" in blocks[1:-3]
    assert blocks[-3:] == ['data: {"job_id": "job", "text": "b"}', "data: [END]", ""]


def test_the_first_event_can_choose_a_json_answer_with_its_status() -> None:
    response = TestClient(app_for("refused", "b")).post("/")
    assert response.status_code == 400
    assert response.json() == {"error": "refused"}


async def test_a_client_that_hangs_up_first_cancels_the_wait() -> None:
    waiting = asyncio.ensure_future(asyncio.sleep(60))

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    assert isinstance(await until_disconnected(waiting, receive), Disconnected)
    await asyncio.sleep(0)
    assert waiting.cancelled()


async def test_the_first_event_wins_over_a_client_still_there() -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def first() -> str:
        return "first"

    assert await until_disconnected(first(), receive) == "first"
