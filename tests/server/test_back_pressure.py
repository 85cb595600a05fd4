"""A full waiting queue: both APIs answer 503 with Retry-After, the requests
already running are unharmed, and there is room again once they finish."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
from openai import OpenAI

from tests.server.conftest import LiveServer

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

# Two slots and no waiting room: a third concurrent request is refused.
COMPOSE = f"""
controller:
  base_path: /api
workflows:
  - id: write
    default: true
    job:
      component: writer
components:
  - id: writer
    type: model
    task: text-generation
    model: {MODEL}
    parallel: 2
    max_queue: 0
    text: ${{input.prompt as text}}
    max_output_length: ${{input.max_tokens as number | 8}}
    params:
      do_sample: false
"""


@contextmanager
def streaming_forever(url: str) -> Iterator[list[str]]:
    """A /v1 completion stream held open (it asks for the whole context) until
    the block ends, when the client hangs up; yields the text received."""
    received: list[str] = []
    started = threading.Event()
    stop = threading.Event()

    def read() -> None:
        body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 1500, "stream": True}
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
            for line in response.iter_lines():
                received.append(line)
                started.set()
                if stop.is_set():
                    return  # closing the response disconnects: the run is cancelled

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert started.wait(60), "the stream never started"
    try:
        yield received
    finally:
        stop.set()
        thread.join(60)


@pytest.fixture
def server(live_server: Callable[..., LiveServer], tmp_path: object) -> LiveServer:
    return live_server(COMPOSE)


def test_both_apis_answer_503_with_retry_after_while_every_slot_is_busy(
    server: LiveServer,
) -> None:
    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    with streaming_forever(server.url) as first, streaming_forever(server.url):
        refused = httpx.post(
            server.url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
            timeout=60,
        )
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        error = refused.json()["error"]
        assert "retry later" in error["message"]

        with pytest.raises(openai.InternalServerError) as caught:
            client.completions.create(model=MODEL, prompt="Hello", max_tokens=4)
        assert caught.value.status_code == 503

        run = httpx.post(
            server.url + "/api/workflows/runs",
            json={"input": {"prompt": "Hello", "max_tokens": 4}},
            timeout=60,
        )
        assert run.status_code == 503
        assert run.headers["Retry-After"] == "1"
        body = run.json()
        assert body["status"] == "failed"
        assert body["error"]["type"] == "server_busy"
        assert "retry later" in body["error"]["message"]
        lines_before = len(first)

    # The refusals did not disturb the running streams, and the slots are free
    # again once the hang-ups are noticed (at the engine's next step).
    assert lines_before > 1
    deadline = time.monotonic() + 60
    while httpx.get(server.url + "/api/models").json()["models"][0]["busy"]:
        assert time.monotonic() < deadline, "the slots were never freed"
        time.sleep(0.05)
    after = client.completions.create(model=MODEL, prompt="Hello", max_tokens=4, temperature=0)
    assert after.choices[0].finish_reason == "length"


def test_a_streaming_run_refused_for_a_full_queue_is_a_plain_503_not_an_event(
    server: LiveServer,
) -> None:
    with streaming_forever(server.url), streaming_forever(server.url):
        refused = httpx.post(
            server.url + "/api/workflows/runs",
            json={"input": {"prompt": "Hello", "max_tokens": 4}},
            headers={"Accept": "text/event-stream"},
            timeout=60,
        )
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"]["type"] == "server_busy"

    # With room again, the same request streams.
    with httpx.stream(
        "POST",
        server.url + "/api/workflows/runs",
        json={"input": {"prompt": "Hello", "max_tokens": 4}},
        headers={"Accept": "text/event-stream"},
        timeout=60,
    ) as accepted:
        assert accepted.status_code == 200
        events = [line for line in accepted.iter_lines() if line.startswith("data: ")]
    assert '"type": "done"' in events[-1]
