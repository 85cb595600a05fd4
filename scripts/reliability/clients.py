"""One streaming request, as a client sees it: to `/v1/chat/completions`
(OpenAI chunks) or to `/api/workflows/runs` (our Server-Sent Events), retried
after `Retry-After` when the server answers 503, optionally cancelled part-way
by hanging up or through `POST /api/tasks/{id}/cancel`. Everything that is
not a documented answer is recorded as the request's `problem`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from scripts.reliability.compose import BASE_PATH, COMPONENT, WORKFLOW

V1 = "v1"
RUNS = "workflow"
ENDPOINTS = (V1, RUNS)

# How a request is cancelled: the client hangs up after some text, or after
# a delay (mid-prefill, or still waiting for a slot), or asks the cancel route.
DISCONNECT = "disconnect"
DISCONNECT_TIMER = "disconnect-timer"
CANCEL_ROUTE = "cancel-route"

FINISHED = ("stop", "length")  # the finish reasons of a whole answer
# Longest a request may take, queueing and retries included: generous, since
# on a busy machine 64 clients sharing 4 slots wait for each other for minutes.
REQUEST_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Cancel:
    how: str
    after_deltas: int = 1  # DISCONNECT, CANCEL_ROUTE
    after_s: float = 0.0  # DISCONNECT_TIMER


@dataclass
class Outcome:
    endpoint: str
    prompt: int  # index into the run's prompt list
    max_tokens: int
    text: str = ""
    finish_reason: str | None = None  # stop | length | cancelled
    completion_tokens: int | None = None
    status: int | None = None  # HTTP status of the last attempt
    refusals: int = 0  # 503 + Retry-After answers, each retried after Retry-After
    ttft_s: float | None = None  # first attempt → first text
    latency_s: float | None = None  # first attempt → end of the stream
    cancel: str | None = None  # how this request was cancelled (None: it was not)
    task_id: str | None = None
    problem: str | None = None  # anything a correct server would not do

    @property
    def answered(self) -> bool:
        """Finished normally with its whole answer."""
        return self.problem is None and self.cancel is None and self.finish_reason in FINISHED

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Refused(Exception):
    """The documented back-pressure answer: 503 with Retry-After."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"503, retry after {retry_after}s")
        self.retry_after = retry_after


async def stream_request(
    client: httpx.AsyncClient,
    endpoint: str,
    prompt: str,
    prompt_index: int,
    max_tokens: int,
    cancel: Cancel | None = None,
    timeout_s: float = REQUEST_TIMEOUT_S,
    max_refusals: int = 1000,
) -> Outcome:
    """One request until it is answered, fails, or is cancelled as `cancel` says."""
    outcome = Outcome(endpoint, prompt_index, max_tokens)
    started = time.perf_counter()
    attempt = _v1_attempt if endpoint == V1 else _runs_attempt
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    if cancel is not None and cancel.how == DISCONNECT_TIMER:
                        await _until_timer(
                            attempt(client, prompt, outcome, started, None), cancel, outcome
                        )
                        if outcome.cancel is not None:
                            outcome.finish_reason = None
                    else:
                        await attempt(client, prompt, outcome, started, cancel)
                    break
                except Refused as refused:
                    outcome.refusals += 1
                    if outcome.refusals > max_refusals:
                        outcome.problem = f"refused {outcome.refusals} times in a row"
                        break
                    await asyncio.sleep(refused.retry_after)
    except TimeoutError:
        outcome.problem = f"no answer after {timeout_s:.0f}s"
    except httpx.HTTPError as error:
        outcome.problem = f"{type(error).__name__}: {error}"
    outcome.latency_s = time.perf_counter() - started
    return outcome


async def _until_timer(
    attempt: Coroutine[Any, Any, None], cancel: Cancel, outcome: Outcome
) -> None:
    """Run the attempt; hang up if it is not over after `cancel.after_s`
    (closing the connection is all a client that gives up does)."""
    try:
        async with asyncio.timeout(cancel.after_s):
            await attempt
    except TimeoutError:
        outcome.cancel = DISCONNECT_TIMER


async def _v1_attempt(
    client: httpx.AsyncClient,
    prompt: str,
    outcome: Outcome,
    started: float,
    cancel: Cancel | None,
) -> None:
    body = {
        "model": COMPONENT,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": outcome.max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if not await _accepted(response, outcome):
            return
        deltas = 0
        async for data in _sse_data(response):
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            if "error" in chunk:
                outcome.problem = f"error event: {chunk['error']}"
                return
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") or ""
                if text:
                    _received(outcome, text, started)
                    deltas += 1
                outcome.finish_reason = choice.get("finish_reason") or outcome.finish_reason
            if chunk.get("usage"):
                outcome.completion_tokens = chunk["usage"]["completion_tokens"]
            if cancel is not None and cancel.how == DISCONNECT and deltas >= cancel.after_deltas:
                outcome.cancel = DISCONNECT
                return  # leaving the block closes the connection mid-stream
        outcome.problem = "the stream ended without [DONE]"


async def _runs_attempt(
    client: httpx.AsyncClient,
    prompt: str,
    outcome: Outcome,
    started: float,
    cancel: Cancel | None,
) -> None:
    body = {"workflow_id": WORKFLOW, "input": {"prompt": prompt, "max_tokens": outcome.max_tokens}}
    headers = {"Accept": "text/event-stream"}
    cancelling: list[asyncio.Task[httpx.Response]] = []  # the cancel request, once sent
    try:
        async with client.stream(
            "POST", f"{BASE_PATH}/workflows/runs", json=body, headers=headers
        ) as response:
            if await _accepted(response, outcome):
                await _read_run(client, response, outcome, started, cancel, cancelling)
    except BaseException:
        for request in cancelling:
            request.cancel()
        raise
    for request in cancelling:
        answer = await request
        state = answer.json().get("status") if answer.status_code == 200 else None
        if state not in ("cancelled", "completed"):
            outcome.problem = f"the cancel route answered {answer.status_code}: {answer.text[:200]}"


async def _read_run(
    client: httpx.AsyncClient,
    response: httpx.Response,
    outcome: Outcome,
    started: float,
    cancel: Cancel | None,
    cancelling: list[asyncio.Task[httpx.Response]],
) -> None:
    """A run's events up to `done` or `error`; hangs up, or sends the cancel
    request, when `cancel` says."""
    deltas = 0
    async for data in _sse_data(response):
        event = json.loads(data)
        outcome.task_id = event.get("task_id", outcome.task_id)
        kind = event.get("type")
        if kind == "done":
            _finished_run(outcome, event)
            return
        if kind == "error":
            outcome.problem = f"error event: {event.get('error')}"
            return
        if kind != "delta":
            outcome.problem = f"unknown event: {data[:200]}"
            return
        if event.get("text"):
            _received(outcome, event["text"], started)
            deltas += 1
        if cancel is None or deltas < cancel.after_deltas or cancelling:
            continue
        if cancel.how == DISCONNECT:
            outcome.cancel = DISCONNECT
            return  # leaving the stream's block closes the connection
        if cancel.how == CANCEL_ROUTE and outcome.task_id:
            # Keep reading while the cancel goes out: the run ends only once
            # its deltas are taken.
            outcome.cancel = CANCEL_ROUTE
            cancel_path = f"{BASE_PATH}/tasks/{outcome.task_id}/cancel"
            cancelling.append(asyncio.ensure_future(client.post(cancel_path)))
    outcome.problem = "the stream ended without a done or error event"


def _finished_run(outcome: Outcome, event: dict[str, Any]) -> None:
    outcome.finish_reason = event.get("finish_reason")
    outcome.completion_tokens = (event.get("usage") or {}).get("completion_tokens")
    status = event.get("status")
    if status == "cancelled":
        outcome.finish_reason = "cancelled"
        if outcome.cancel is None:
            outcome.problem = "the run was cancelled without being asked to"
    elif status != "completed":
        outcome.problem = f"the run ended {status}: {event.get('error')}"
    elif event.get("output") != outcome.text:
        outcome.problem = (
            f"the deltas joined ({outcome.text!r}) differ from the output ({event.get('output')!r})"
        )


async def _accepted(response: httpx.Response, outcome: Outcome) -> bool:
    """True for 200; raises `Refused` for 503 + Retry-After; records anything else."""
    outcome.status = response.status_code
    if response.status_code == 200:
        return True
    await response.aread()
    retry_after = response.headers.get("retry-after")
    if response.status_code == 503 and retry_after is not None:
        raise Refused(float(retry_after))
    outcome.problem = f"HTTP {response.status_code}: {response.text[:300]}"
    return False


def _received(outcome: Outcome, text: str, started: float) -> None:
    if outcome.ttft_s is None:
        outcome.ttft_s = time.perf_counter() - started
    outcome.text += text


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield line[len("data: ") :]
