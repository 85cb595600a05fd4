"""Faults against a real server on the embedded model: clients that hang up
mid-prefill or mid-stream, readers that stall, cancel storms, prompts that do
not fit the context, and requests for a million tokens. After each, the
engine's slots are free, its queue is empty, and the answers of the requests
running beside the fault are the ones they give alone (greedy)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from openai import OpenAI

from runtime.engine.batched import BatchedEngine
from runtime.engine.sequence import Sequence, SequenceStatus
from runtime.engine.types import FinishReason
from runtime.server import openai_routes
from runtime.server.openai_stream import BackgroundGeneration
from runtime.service import Service
from tests.server.composes import (
    LONG_PROMPT,
    MODEL,
    TINY_COMPONENT,
    TINY_WORKFLOW,
    WRITER,
    sse_events,
)
from tests.server.conftest import LiveServer, free_port, make_app, wait_ready

# The writer compose file, whose `writer` and `streamer` share one 4-slot
# engine, and whose `tiny` component has a 64-token context and reads its
# output limit from the input.
COMPOSE = WRITER.format(
    controller="",
    model=MODEL,
    extra_workflows=TINY_WORKFLOW,
    extra_components=TINY_COMPONENT.replace(
        "max_output_length: 8", "max_output_length: ${input.max_tokens as number | 8}"
    ),
)
EVENTS = {"accept": "text/event-stream"}
# About 1,500 tokens: three prefill chunks of 512.
WORDS = "word " * 1500
# A request that runs beside each fault, and its greedy answer when it runs alone.
BYSTANDER = "The recipe for bread"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, embedded_model_path: Path
) -> Iterator[LiveServer]:
    """One real server on `COMPOSE` for the module (the model loads once)."""
    folder = tmp_path_factory.mktemp("faults")
    (folder / "model-compose.yml").write_text(COMPOSE)
    app = make_app(folder / "model-compose.yml")
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{port}", app, uv, thread)
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    wait_ready(lambda path: httpx.get(live.url + path))
    yield live
    live.stop()


def service_of(server: LiveServer) -> Service:
    service: Service = server.app.state.service
    return service


def engine_of(server: LiveServer, component: str = "writer") -> BatchedEngine:
    engine = service_of(server).components.loaded(component)
    assert isinstance(engine, BatchedEngine)
    return engine


def eventually(check: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def is_idle(server: LiveServer) -> bool:
    """Every slot free, nothing queued or running, no task in progress."""
    for component in ("writer", "tiny"):
        engine = engine_of(server, component)
        if engine.scheduler.running or engine.stats().busy or engine.stats().waiting:
            return False
    return not service_of(server).tasks.running()


def wait_idle(server: LiveServer) -> None:
    eventually(lambda: is_idle(server), "the engine still holds work after the fault")


def sequence_of(server: LiveServer, marker: str) -> Sequence | None:
    """The engine's sequence for the request whose prompt contains `marker`."""
    for seq in list(engine_of(server).scheduler.running):
        request = seq.request
        text = request.prompt or "".join(m.content for m in request.messages or [])
        if marker in text:
            return seq
    return None


def openai_client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def greedy_completion(server: LiveServer, prompt: str, max_tokens: int = 24) -> str:
    """A greedy /v1 completion, streamed: the reference a fault must not change."""
    stream = openai_client(server).completions.create(
        model="writer", prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True
    )
    return "".join(chunk.choices[0].text for chunk in stream if chunk.choices)


class RawRequest:
    """A POST on a plain socket, so that a test hangs up exactly when it wants
    (an HTTP client would still be waiting for the headers)."""

    def __init__(self, url: str, path: str, body: dict[str, Any], accept: str | None = None):
        host, port = url.removeprefix("http://").split(":")
        payload = json.dumps(body).encode()
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
        ] + ([f"Accept: {accept}"] if accept else [])
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)

    def hang_up(self) -> None:
        self.sock.close()


# -- 1. Clients that hang up mid-prefill and mid-stream ---------------------------

# Each entry point, as (path, body builder, Accept header): the body carries a
# marker so the test can find its sequence in the engine.
ENTRY_POINTS: dict[str, tuple[str, Callable[[str], dict[str, Any]], str | None]] = {
    "v1-chat-stream": (
        "/v1/chat/completions",
        lambda text: {
            "model": "writer",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 2000,
            "stream": True,
        },
        None,
    ),
    "v1-completion": (
        "/v1/completions",
        lambda text: {"model": "writer", "prompt": text, "max_tokens": 2000},
        None,
    ),
    "api-events": (
        "/api/workflows/stream/runs",
        lambda text: {"input": {"prompt": text, "max_tokens": 2000}},
        "text/event-stream",
    ),
    "api-waiting": (
        "/api/workflows/write/runs",
        lambda text: {"input": {"prompt": text, "max_tokens": 2000}},
        None,
    ),
}


def in_prefill(seq: Sequence | None) -> bool:
    return seq is not None and seq.status is SequenceStatus.PREFILL


def streaming(seq: Sequence | None) -> bool:
    return (
        seq is not None and seq.status is SequenceStatus.DECODE and seq.num_completion_tokens >= 3
    )


@pytest.fixture(scope="module")
def alone(server: LiveServer) -> str:
    return greedy_completion(server, BYSTANDER)


@pytest.mark.parametrize("moment", ["prefill", "stream"])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_client_that_hangs_up_cancels_its_run_and_frees_its_slot_while_others_keep_going(
    server: LiveServer, alone: str, entry: str, moment: str
) -> None:
    path, body, accept = ENTRY_POINTS[entry]
    marker = f"{entry}-{moment}"
    # A long prompt to hang up during its prefill; a short one to hang up mid-answer.
    prompt = f"{marker}: {WORDS}" if moment == "prefill" else f"{marker}: Once upon a time"
    with ThreadPoolExecutor(1) as pool:
        client = RawRequest(server.url, path, body(prompt), accept)
        eventually(
            lambda: (in_prefill if moment == "prefill" else streaming)(sequence_of(server, marker)),
            f"the request never reached its {moment}",
        )
        seq = sequence_of(server, marker)
        assert seq is not None
        bystander = pool.submit(greedy_completion, server, BYSTANDER)
        client.hang_up()
        eventually(lambda: seq.is_finished, "the run went on after its client hung up")
        assert seq.finish_reason is FinishReason.CANCELLED
        assert bystander.result() == alone
    wait_idle(server)


# -- 2. Slow readers ----------------------------------------------------------------


def throttle(server: LiveServer, client_addr: tuple[str, int]) -> None:
    """Shrink the server's buffers for one connection, as a slow network
    would: on loopback the kernel would otherwise take hundreds of kilobytes
    from a client that reads nothing, and the run's own queue never fills."""
    done = threading.Event()
    for connection in list(server.server.server_state.connections):
        transport = connection.transport  # type: ignore[union-attr]
        if transport.get_extra_info("peername") == client_addr:

            def shrink(transport: Any = transport) -> None:
                transport.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
                )
                transport.set_write_buffer_limits(high=1024)
                done.set()

            connection.loop.call_soon_threadsafe(shrink)  # type: ignore[union-attr]
    assert done.wait(10), f"no server connection from {client_addr}"


@pytest.fixture
def generations(monkeypatch: pytest.MonkeyPatch) -> list[BackgroundGeneration]:
    """Every /v1 generation the routes start, to look at its queue."""
    started: list[BackgroundGeneration] = []

    class Recorded(BackgroundGeneration):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(openai_routes, "BackgroundGeneration", Recorded)
    return started


def test_a_reader_that_stops_reading_holds_back_only_its_own_stream_and_later_gets_all_of_it(
    server: LiveServer, alone: str, generations: list[BackgroundGeneration]
) -> None:
    body = {
        "model": "writer",
        "messages": [{"role": "user", "content": "A stalled reader: tell me a story."}],
        "max_tokens": 300,
        "temperature": 0,
    }
    url = f"{server.url}/v1/chat/completions"
    reference = httpx.post(url, json=body, timeout=120).json()["choices"][0]
    small = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
    with (
        httpx.Client(transport=httpx.HTTPTransport(socket_options=small), timeout=120) as client,
        client.stream("POST", url, json={**body, "stream": True}) as response,
    ):
        throttle(server, response.extensions["network_stream"].get_extra_info("client_addr"))
        stalled = generations[-1]
        # The stream waits on its bounded queue, but the engine does not wait
        # for the stream: it finishes the generation and frees the slot...
        eventually(stalled.queue.full, "the stream's queue never filled")
        eventually(lambda: not engine_of(server).scheduler.running, "the engine waited")
        # ...and serves everyone else meanwhile.
        assert greedy_completion(server, BYSTANDER) == alone
        assert not stalled.task.done()  # held back by its reader, and only by it
        chunks = [line[6:] for line in response.iter_lines() if line]
    assert chunks[-1] == "[DONE]"
    choices = [json.loads(chunk)["choices"][0] for chunk in chunks[:-1]]
    text = "".join(choice["delta"].get("content", "") for choice in choices)
    assert text == reference["message"]["content"]
    assert choices[-1]["finish_reason"] == reference["finish_reason"] == "length"
    wait_idle(server)


# -- 3. Cancel storms ---------------------------------------------------------------


def test_a_storm_of_cancellations_leaves_normal_requests_exact_and_no_slot_held(
    server: LiveServer, alone: str
) -> None:
    runs = f"{server.url}/api/workflows/write/runs"
    story = {"prompt": "Once upon a time", "max_tokens": 24}
    story_alone = httpx.post(runs, json={"input": story}, timeout=120).json()["output"]
    long = {"max_tokens": 2000, "prompt": "A storm: the longest story ever told"}
    background = {"input": long, "wait_for_completion": False}
    with ThreadPoolExecutor(12) as pool:
        # Eight runs to cancel, four clients that hang up (one per entry
        # point), and two normal requests queued behind them all.
        tasks = [httpx.post(runs, json=background, timeout=60).json() for _ in range(8)]
        hanging_up = [
            RawRequest(server.url, path, body(long["prompt"]), accept)
            for path, body, accept in ENTRY_POINTS.values()
        ]
        normal = [
            pool.submit(greedy_completion, server, BYSTANDER),
            pool.submit(lambda: httpx.post(runs, json={"input": story}, timeout=120).json()),
        ]
        cancels = [
            pool.submit(httpx.post, f"{server.url}/api/tasks/{t['task_id']}/cancel", timeout=60)
            for t in tasks
        ]
        for client in hanging_up:
            client.hang_up()
        assert [c.result().json()["status"] for c in cancels] == ["cancelled"] * len(tasks)
        assert normal[0].result() == alone
        assert normal[1].result()["output"] == story_alone
    wait_idle(server)


# -- 7. Prompts longer than the context ---------------------------------------------


def test_a_prompt_that_does_not_fit_is_a_400_on_every_entry_point_and_others_run_on(
    server: LiveServer, alone: str
) -> None:
    tiny_runs = f"{server.url}/api/workflows/tiny/runs"
    chat = {"model": "tiny", "messages": [{"role": "user", "content": LONG_PROMPT}]}
    completion = {"model": "tiny", "prompt": LONG_PROMPT}
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        (f"{server.url}/v1/chat/completions", chat, {}),
        (f"{server.url}/v1/chat/completions", {**chat, "stream": True}, {}),
        (f"{server.url}/v1/completions", completion, {}),
        (f"{server.url}/v1/completions", {**completion, "stream": True}, {}),
        (tiny_runs, {"input": {"prompt": LONG_PROMPT}}, {}),
        (tiny_runs, {"input": {"prompt": LONG_PROMPT}}, EVENTS),
    ]
    with ThreadPoolExecutor(len(requests) + 1) as pool:
        bystander = pool.submit(greedy_completion, server, BYSTANDER)
        answers = list(
            pool.map(lambda r: httpx.post(r[0], json=r[1], headers=r[2], timeout=120), requests)
        )
        assert bystander.result() == alone
    for answer in answers:
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        if "/v1/" in str(answer.url):  # OpenAI's shape and code
            assert error["code"] == "context_length_exceeded"
            assert error["param"] in ("messages", "prompt")
            assert error["message"].startswith("This model's maximum context length is 64")
        else:
            assert error["type"] == "context_length_exceeded"
    wait_idle(server)


# -- 8. A request for a million tokens (or many more) -------------------------------


@pytest.mark.parametrize("max_tokens", [1_000_000, 10**18])
def test_a_request_for_a_huge_number_of_tokens_stops_at_the_end_of_the_context(
    server: LiveServer, max_tokens: int
) -> None:
    """As llama.cpp's server does (and our max_output_length): clamped to the
    room left in the context, finish_reason "length"; nothing is sized by it."""
    api = openai_client(server)
    chat = api.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "Tell me a story."}],
        max_tokens=max_tokens,
        temperature=0,
    )
    assert chat.choices[0].finish_reason == "length"
    assert chat.usage is not None and chat.usage.total_tokens == 64
    stream = api.completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=max_tokens, temperature=0, stream=True
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "length"
    events = sse_events(
        httpx.post(
            f"{server.url}/api/workflows/tiny/runs",
            json={"input": {"prompt": "Once upon a time", "max_tokens": max_tokens}},
            headers=EVENTS,
            timeout=120,
        ).text
    )
    assert (events[-1]["status"], events[-1]["finish_reason"]) == ("completed", "length")
    assert events[-1]["usage"]["total_tokens"] == 64
    wait_idle(server)


def test_a_token_count_beyond_any_number_is_a_400_naming_the_input(server: LiveServer) -> None:
    huge = "1" + "0" * 400  # valid JSON, but no float holds it
    response = httpx.post(
        f"{server.url}/api/workflows/tiny/runs",
        content=f'{{"input": {{"prompt": "Once upon a time", "max_tokens": {huge}}}}}',
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_input"
    assert "max_tokens" in response.json()["error"]["message"]
    wait_idle(server)


# -- 5. One model fails to load while another serves --------------------------------

TWO_MODELS = f"""
controller:
  base_path: /api
workflows:
  - id: good
    job: {{component: good}}
  - id: broken
    job: {{component: broken}}
  - id: lazy
    job: {{component: lazy}}
components:
  - id: good
    type: model
    task: text-generation
    model: {MODEL}
    text: ${{input.prompt as text}}
    max_output_length: 16
    params: {{do_sample: false}}
  - id: broken
    type: model
    task: text-generation
    model: ./truncated.gguf
    text: ${{input.prompt as text}}
  - id: lazy
    type: model
    task: text-generation
    model: ./notes.gguf
    preload: false
    text: ${{input.prompt as text}}
"""


def test_a_model_that_fails_to_load_makes_its_requests_503_while_the_others_serve(
    live_server: Callable[..., LiveServer], tmp_path: Path, embedded_model_path: Path
) -> None:
    with embedded_model_path.open("rb") as model:
        (tmp_path / "truncated.gguf").write_bytes(model.read(1_000_000))
    (tmp_path / "notes.gguf").write_text("not a model\n")
    truncated = f"model file is truncated (incomplete download?): {tmp_path / 'truncated.gguf'}"
    not_gguf = (
        "not a GGUF model file (it does not start with the GGUF magic bytes): "
        f"{tmp_path / 'notes.gguf'}"
    )
    server = live_server(TWO_MODELS)
    health = httpx.get(f"{server.url}/api/health")
    assert (health.status_code, health.json()) == (
        200,
        {
            "status": "degraded",
            "error": {
                "type": "model_error",
                "message": f"component 'broken' is unavailable: {truncated}",
            },
        },
    )
    prompt = {"input": {"prompt": "Once upon a time"}}
    good_alone = httpx.post(f"{server.url}/api/workflows/good/runs", json=prompt, timeout=60)

    def run(workflow: str, headers: dict[str, str] | None = None) -> httpx.Response:
        url = f"{server.url}/api/workflows/{workflow}/runs"
        return httpx.post(url, json=prompt, headers=headers, timeout=60)

    def v1(model: str) -> httpx.Response:
        body = {"model": model, "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0}
        return httpx.post(f"{server.url}/v1/completions", json=body, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        good = [pool.submit(run, "good"), pool.submit(run, "good", EVENTS), pool.submit(v1, "good")]
        bad = {
            "broken": [pool.submit(run, "broken"), pool.submit(run, "broken", EVENTS)],
            "lazy": [pool.submit(run, "lazy"), pool.submit(run, "lazy")],
        }
        bad_v1 = {"broken": pool.submit(v1, "broken"), "lazy": pool.submit(v1, "lazy")}
    assert good[0].result().json()["output"] == good_alone.json()["output"]
    assert sse_events(good[1].result().text)[-1]["output"] == good_alone.json()["output"]
    assert good_alone.json()["output"].endswith(good[2].result().json()["choices"][0]["text"])
    for component, reason in (("broken", truncated), ("lazy", not_gguf)):
        for future in bad[component]:
            answer = future.result()
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/json"
            assert answer.json()["error"] == {"type": "model_error", "message": reason}
        refused = bad_v1[component].result()
        assert refused.status_code == 503
        assert refused.json() == {
            "error": {
                "message": reason,
                "type": "server_error",
                "param": None,
                "code": "model_error",
            }
        }
