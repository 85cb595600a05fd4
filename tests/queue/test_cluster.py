"""A front and workers as real processes (`model-compose up`) on the embedded
model and a real redis-server: spreading, streaming, a worker killed, Redis
restarted, cancels, back-pressure, and 200 runs with cancels and a death."""

from __future__ import annotations

import concurrent.futures
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.queue.conftest import Process, RedisServer, front_file, worker_file

pytestmark = pytest.mark.queue

QUEUE = "test-queue"
# The worker's lease: short, so that a killed worker is noticed within seconds.
FAST = {"visibility_timeout": "1s"}
# A prompt the embedded model answers at length (a run still going when the test acts).
LONG = "Count from 1 to 1000, one number per line."


def run(
    front: Process, prompt: str = "Say hi", timeout: float = 60, **input: Any
) -> httpx.Response:
    return httpx.post(
        f"{front.url}/api/workflows/runs",
        json={
            "workflow_id": "chat",
            "input": {"prompt": prompt, **input},
            "wait_for_completion": True,
        },
        timeout=timeout,
    )


def start(front: Process, prompt: str = "Say hi", **input: Any) -> str:
    response = httpx.post(
        f"{front.url}/api/workflows/runs",
        json={
            "workflow_id": "chat",
            "input": {"prompt": prompt, **input},
            "wait_for_completion": False,
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["task_id"])


def task(front: Process, task_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{front.url}/api/tasks/{task_id}", timeout=10).json())


def wait_task(front: Process, task_id: str, seconds: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        state = task(front, task_id)
        if state["status"] in ("completed", "failed", "cancelled"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


def sse(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a run asked for as Server-Sent Events."""
    with httpx.stream(
        "POST", url, json=body, headers={"accept": "text/event-stream"}, timeout=300
    ) as response:
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def test_runs_spread_across_two_workers(
    redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    first = compose_process(
        worker_file(redis_server.port, worker_id="one", max_concurrent_count=2), "w1"
    )
    second = compose_process(
        worker_file(redis_server.port, worker_id="two", max_concurrent_count=2), "w2"
    )
    front = compose_process(front_file(redis_server.port), "front", http=True)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: run(front, f"Say {i}", max_tokens=24), range(8)))
    assert all(a.status_code == 200 and a.json()["status"] == "completed" for a in answers)
    stored = [
        json.loads(v)
        for k in redis_server.client().keys(f"{QUEUE}:chat:*")
        if (v := redis_server.client().get(k))
    ]
    by_worker = {result["worker_id"] for result in stored}
    assert by_worker == {"one", "two"}, by_worker
    assert first.popen.poll() is None and second.popen.poll() is None


def test_streaming_through_the_queue_reaches_the_front_as_server_sent_events(
    redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    compose_process(worker_file(redis_server.port, streaming=True), "w1")
    front = compose_process(front_file(redis_server.port), "front", http=True)
    body = {"workflow_id": "chat", "input": {"prompt": "Count to 5", "max_tokens": 24}}
    events = sse(f"{front.url}/api/workflows/runs", body)
    deltas = [e["text"] for e in events if e["type"] == "delta"]
    assert len(deltas) > 3
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
    assert events[-1]["output"] == "".join(deltas)
    # The worker's token counts reach the front's answer.
    assert events[-1]["usage"]["completion_tokens"] > 3


def test_a_worker_killed_mid_run_leaves_its_run_to_the_other(
    redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    doomed = compose_process(worker_file(redis_server.port, worker_id="doomed", **FAST), "w1")
    front = compose_process(front_file(redis_server.port), "front", http=True)
    task_id = start(front, LONG, max_tokens=1000)
    client = redis_server.client()
    deadline = time.monotonic() + 30
    while client.llen(f"{QUEUE}:~taken:doomed:chat") == 0:
        assert time.monotonic() < deadline, "the worker never took the run"
        time.sleep(0.02)
    doomed.kill()  # SIGKILL: no goodbye, its lease lapses
    compose_process(worker_file(redis_server.port, worker_id="survivor", **FAST), "w2")
    state = wait_task(front, task_id)
    assert state["status"] == "completed", state
    result = json.loads(next(v for k in client.keys(f"{QUEUE}:chat:*") if (v := client.get(k))))
    assert result["worker_id"] == "survivor"
    assert client.hkeys(f"{QUEUE}:~workers") == [b"survivor"]
    assert not client.keys(f"{QUEUE}:~taken:doomed:*")


def test_redis_restarted_mid_run_fails_clearly_and_the_front_recovers(
    redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    compose_process(worker_file(redis_server.port, **FAST), "w1")
    front = compose_process(front_file(redis_server.port), "front", http=True)
    for _ in range(3):  # a run that ends before Redis goes is tried again
        task_id = start(front, LONG, max_tokens=1000)
        deadline = time.monotonic() + 30
        while not redis_server.client().keys(f"{QUEUE}:~taken:*"):
            assert time.monotonic() < deadline, "the worker never took the run"
            time.sleep(0.01)
        redis_server.restart(down_for=1.0)  # mid-run: the worker holds it
        state = wait_task(front, task_id, seconds=30)
        if state["status"] != "completed":
            break
    assert state["status"] == "failed", state
    assert state["error"]["type"] == "queue_unavailable"
    assert "cannot be reached or dropped the connection" in state["error"]["message"]
    # Redis is back (empty): the next run works, on the same worker.
    deadline = time.monotonic() + 30
    while True:
        answer = run(front, max_tokens=8)
        if answer.status_code == 200 and answer.json()["status"] == "completed":
            break
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.5)


def test_a_cancel_reaches_the_worker_and_frees_its_slot(
    redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    worker = compose_process(worker_file(redis_server.port, max_concurrent_count=1), "w1")
    front = compose_process(front_file(redis_server.port), "front", http=True)
    task_id = start(front, LONG, max_tokens=2000)
    client = redis_server.client()
    deadline = time.monotonic() + 30
    while not client.keys(f"{QUEUE}:~taken:*"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    httpx.post(f"{front.url}/api/tasks/{task_id}/cancel", timeout=10)
    assert wait_task(front, task_id)["status"] == "cancelled"
    # Its one slot is free again: the next run is answered at once, not after 2,000 tokens.
    began = time.monotonic()
    assert run(front, max_tokens=8).json()["status"] == "completed"
    assert time.monotonic() - began < 15
    assert "cancelled" in json.dumps(
        [json.loads(v) for k in client.keys(f"{QUEUE}:chat:*") if (v := client.get(k))]
    )
    assert worker.popen.poll() is None


def test_a_worker_takes_no_more_runs_than_its_slots_and_the_front_bounds_the_queue(
    redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    front = compose_process(front_file(redis_server.port, max_queue=3), "front", http=True)
    # No worker yet: three runs wait in Redis, the fourth is refused.
    waiting = [start(front, f"Story {i}", max_tokens=64) for i in range(3)]
    refused = httpx.post(
        f"{front.url}/api/workflows/runs",
        json={"workflow_id": "chat", "input": {"prompt": "one more"}, "wait_for_completion": True},
        timeout=30,
    )
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert "max_queue 3" in refused.json()["error"]["message"]
    compose_process(worker_file(redis_server.port, worker_id="w", max_concurrent_count=2), "w1")
    client = redis_server.client()
    most = 0
    while any(task(front, t)["status"] not in ("completed", "failed") for t in waiting):
        most = max(most, client.llen(f"{QUEUE}:~taken:w:chat"))
        time.sleep(0.01)
    assert most == 2
    assert all(wait_task(front, t)["status"] == "completed" for t in waiting)


def test_runs_whose_workers_keep_dying_fail_after_max_attempts(
    redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    """A run held by a dead worker, already on its last attempt: failed with
    why, not re-queued for ever; one with attempts left runs again."""
    client = redis_server.client()
    front_tasks = {}
    for run_id, attempt in (("LAST", 3), ("AGAIN", 1)):
        message = {
            "task_id": f"T{run_id}",
            "run_id": run_id,
            "input": {"prompt": "hi", "max_tokens": 8},
        }
        if attempt > 1:
            message["attempt"] = attempt
        client.lpush(f"{QUEUE}:~taken:ghost:chat", json.dumps(message))
        front_tasks[run_id] = message
    client.hset(f"{QUEUE}:~workers", "ghost", json.dumps(["chat"]))  # no lease: dead
    compose_process(worker_file(redis_server.port, **FAST), "w1")
    deadline = time.monotonic() + 30
    while not (client.exists(f"{QUEUE}:chat:LAST") and client.exists(f"{QUEUE}:chat:AGAIN")):
        assert time.monotonic() < deadline, client.keys("*")
        time.sleep(0.1)
    last = json.loads(client.get(f"{QUEUE}:chat:LAST"))  # type: ignore[arg-type]
    again = json.loads(client.get(f"{QUEUE}:chat:AGAIN"))  # type: ignore[arg-type]
    assert last["status"] == "failed"
    assert "taken 3 times by workers that stopped" in last["error"]
    assert "max_attempts 3" in last["error"]
    assert again["status"] == "completed"


@pytest.mark.soak
def test_200_runs_with_random_cancels_and_a_worker_killed(
    redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    """Every run not cancelled is answered exactly once; nothing is left in
    Redis without a TTL but the live worker's own records."""
    rng = random.Random(18)
    victim = compose_process(worker_file(redis_server.port, worker_id="victim", **FAST), "w1")
    compose_process(worker_file(redis_server.port, worker_id="steady", **FAST), "w2")
    front = compose_process(front_file(redis_server.port, max_queue=500), "front", http=True)
    ids = [start(front, f"Say {i}", max_tokens=rng.choice((4, 8, 16))) for i in range(200)]
    cancelled = set(rng.sample(ids, 30))
    for i, task_id in enumerate(ids):
        if task_id in cancelled:
            httpx.post(f"{front.url}/api/tasks/{task_id}/cancel", timeout=10)
        if i == 60:
            victim.kill()
    states = {task_id: wait_task(front, task_id, seconds=300) for task_id in ids}
    for task_id, state in states.items():
        if task_id in cancelled:
            assert state["status"] in ("cancelled", "completed"), state
        else:
            assert state["status"] == "completed", state
    client = redis_server.client()
    results = [
        json.loads(v)
        for k in client.keys(f"{QUEUE}:chat:*")
        if not k.endswith(b":stream") and (v := client.get(k))
    ]
    answered = [r["run_id"] for r in results if r["status"] == "completed"]
    assert len(answered) == len(set(answered))
    completed = sum(1 for s in states.values() if s["status"] == "completed")
    assert len(answered) >= completed
    # Every key has a TTL except the live worker's lease-free records.
    time.sleep(3)  # the victim's lease lapses and is reaped
    for key in client.keys("*"):
        if key in (f"{QUEUE}:~workers".encode(),):
            continue
        assert client.ttl(key) > 0, key
    assert client.hkeys(f"{QUEUE}:~workers") == [b"steady"]


@pytest.mark.parametrize("pair", ["", "-stream"])
def test_the_example_front_and_worker_run_as_written(
    pair: str, redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    """examples/queue: model-compose's own front files, and our workers; only
    Redis's port is changed (a test's own redis-server)."""
    examples = Path(__file__).parents[2] / "examples" / "queue"

    def text(folder: str) -> str:
        source = (examples / folder / "model-compose.yml").read_text()
        return source.replace("port: 6379", f"port: {redis_server.port}")

    compose_process(text(f"worker{pair}"), "worker")
    front = compose_process(text(f"front{pair}"), "front", http=True)
    if not pair:
        answer = httpx.post(
            f"{front.url}/api/workflows/runs",
            json={"input": {"text": "Hello"}, "output_only": True},
            timeout=300,
        )
        assert answer.status_code == 200, answer.text
        assert isinstance(answer.json()["text"], str) and answer.json()["text"]
        return
    events = sse(f"{front.url}/api/workflows/runs", {"input": {"prompt": "Count to 5"}})
    deltas = [e["text"] for e in events if e["type"] == "delta"]
    assert len(deltas) > 3 and events[-1]["type"] == "done"
    assert events[-1]["output"] == "".join(deltas)


def test_metrics_show_the_queue_on_the_front_and_on_a_worker(
    redis_server: RedisServer, compose_process: Callable[..., Process]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.server.conftest import free_port

    port = free_port()
    compose_process(
        worker_file(redis_server.port, worker_id="w", metrics_port=port, extra="  api_key: k3y"),
        "w1",
    )
    front = compose_process(front_file(redis_server.port), "front", http=True)
    assert run(front, max_tokens=4).json()["status"] == "completed"

    def samples(url: str, key: str | None = None) -> dict[tuple[str, tuple[Any, ...]], float]:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        text = httpx.get(url, headers=headers, timeout=10).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    worker_url = f"http://127.0.0.1:{port}/metrics"
    assert httpx.get(worker_url, timeout=10).status_code == 401
    worker = samples(worker_url, "k3y")
    queue = (("queue", QUEUE),)
    assert worker[("model_compose_queue_worker_slots", queue)] == 4
    assert worker[("model_compose_queue_worker_runs_held", queue)] == 0
    assert (
        worker[
            ("model_compose_queue_worker_runs_total", (("queue", QUEUE), ("status", "completed")))
        ]
        == 1
    )
    assert worker[("model_compose_queue_depth", (("queue", QUEUE), ("workflow", "chat")))] == 0
    assert (
        worker[
            ("model_compose_workflow_runs_total", (("status", "completed"), ("workflow", "chat")))
        ]
        == 1
    )
    assert any(
        name == "model_compose_completion_tokens_total" and value > 0
        for (name, _), value in worker.items()
    )
    ours = samples(f"{front.url}/metrics")
    assert ours[("model_compose_queue_runs_dispatched", queue)] == 0
    assert ours[("model_compose_queue_depth", (("queue", QUEUE), ("workflow", "chat")))] == 0
    remote = (("status", "completed"), ("workflow", "<remote>"))
    assert ours[("model_compose_workflow_runs_total", remote)] == 1


def test_a_worker_runs_in_the_background_with_up_d_and_stops_with_down(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    import subprocess
    import sys

    folder = tmp_path / "worker"
    folder.mkdir()
    (folder / "model-compose.yml").write_text(worker_file(redis_server.port, worker_id="bg"))
    root = Path(__file__).parents[2]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runtime.cli", *args, "-f", str(folder)],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=120,
        )

    started = cli("up", "-d")
    try:
        assert started.returncode == 0, started.stderr
        assert "as a queue worker" in started.stdout
        assert redis_server.client().hkeys(f"{QUEUE}:~workers") == [b"bg"]
    finally:
        stopped = cli("down")
    assert stopped.returncode == 0, stopped.stderr
    assert redis_server.client().hkeys(f"{QUEUE}:~workers") == []


def test_model_compose_run_on_a_front_file_runs_through_the_queue(
    redis_server: RedisServer, compose_process: Callable[..., Process], tmp_path: Path
) -> None:
    import subprocess
    import sys

    examples = Path(__file__).parents[2] / "examples" / "queue"
    worker = (examples / "worker" / "model-compose.yml").read_text()
    compose_process(worker.replace("port: 6379", f"port: {redis_server.port}"), "worker")
    front = tmp_path / "front.yml"
    source = (examples / "front" / "model-compose.yml").read_text()
    front.write_text(source.replace("port: 6379", f"port: {redis_server.port}"))
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "run", "-f", str(front), "-i", '{"text": "Hi"}'],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["text"]
