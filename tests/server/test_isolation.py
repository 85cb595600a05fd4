"""Requests on a real server do not affect each other: a failing one leaves
the others running, and concurrent runs each get their own text."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.server.composes import LONG_PROMPT, run_body, sse_events, writer_compose
from tests.server.conftest import LiveServer


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers, timeout=60)


def test_a_failing_request_does_not_affect_one_running_beside_it(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(writer_compose(tiny=True))
    runs = f"{server.url}/api/workflows/runs"
    good = run_body(max_tokens=48)
    alone = post(runs, good).json()["output"]
    with ThreadPoolExecutor(6) as pool:
        streamed = pool.submit(post, runs, good, {"accept": "text/event-stream"})
        plain = pool.submit(post, runs, good)
        too_long = pool.submit(
            post, f"{server.url}/api/workflows/tiny/runs", {"input": {"prompt": LONG_PROMPT}}
        )
        bad_json = pool.submit(
            httpx.post, runs, content=b"{", timeout=60, headers={"content-type": "application/json"}
        )
        missing = pool.submit(post, runs, {"input": {}})
        unknown = pool.submit(post, f"{server.url}/api/workflows/nope/runs", good)
    assert too_long.result().status_code == 400
    assert bad_json.result().status_code == 400
    assert missing.result().status_code == 400
    assert unknown.result().status_code == 404
    assert plain.result().status_code == 200
    assert plain.result().json()["output"] == alone
    done = sse_events(streamed.result().text)[-1]
    assert done["type"] == "done"
    assert done["output"] == alone


def test_concurrent_runs_each_get_their_own_text(live_server: Callable[..., LiveServer]) -> None:
    server = live_server(writer_compose())
    runs = f"{server.url}/api/workflows/runs"
    prompts = ["Once upon a time", "The recipe for bread", "In the year 3000"]
    alone = {p: post(runs, run_body(p, max_tokens=16)).json()["output"] for p in prompts}
    with ThreadPoolExecutor(len(prompts)) as pool:
        together = dict(
            zip(
                prompts,
                pool.map(
                    lambda p: post(runs, run_body(p, max_tokens=16)).json()["output"], prompts
                ),
                strict=True,
            )
        )
    assert together == alone


def test_a_client_that_hangs_up_while_waiting_cancels_its_run(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(writer_compose())
    runs = f"{server.url}/api/workflows/runs"
    try:
        post_with_timeout = httpx.post(runs, json=run_body(max_tokens=1000), timeout=0.5)
    except httpx.ReadTimeout:
        pass
    else:
        raise AssertionError(f"a 1000-token run finished in 0.5 s: {post_with_timeout.text}")
    tasks = server.app.state.service.tasks
    deadline = time.monotonic() + 5
    while tasks.running():
        assert time.monotonic() < deadline, [t.to_json() for t in tasks.running()]
        time.sleep(0.05)
    assert post(runs, run_body()).json()["status"] == "completed"
