"""Wire compatibility with model-compose: messages written the way its front
and its workers write them (json.dumps of the same dicts, the same Redis
commands) against our worker and our front, on a real redis-server."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from runtime.config import load_config
from runtime.service import Service
from tests.queue.conftest import RedisServer, front_file, worker_file

pytestmark = pytest.mark.queue

QUEUE = "test-queue"


def load(text: str, tmp_path: Path, name: str) -> Service:
    path = tmp_path / f"{name}.yml"
    path.write_text(textwrap.dedent(text))
    return Service(load_config([path]).config)


async def started_worker(redis_server: RedisServer, tmp_path: Path, **adapter: Any) -> Service:
    service = load(worker_file(redis_server.port, **adapter), tmp_path, "worker")
    await service.start()
    assert service.worker is not None
    return service


async def queue_as_model_compose(
    client: redis.Redis, task_id: str, run_id: str, input: dict[str, Any]
) -> dict[str, Any]:
    """Queue a run as model-compose's front does (SUBSCRIBE to its result
    channel, then LPUSH json.dumps of the three keys); its first message."""
    pubsub = client.pubsub()
    pubsub.subscribe(f"{QUEUE}:chat:{run_id}")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    message = {"task_id": task_id, "run_id": run_id, "input": input}
    client.lpush(f"{QUEUE}:chat", json.dumps(message))
    for _ in range(300):
        got = await asyncio.to_thread(pubsub.get_message, True, 0.1)
        if got is not None:
            pubsub.close()
            return dict(json.loads(got["data"]))
    raise AssertionError(f"no answer to run {run_id}")


async def test_a_run_queued_as_model_compose_queues_it_is_answered_as_it_expects(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    service = await started_worker(redis_server, tmp_path)
    client = redis_server.client()
    try:
        # model-compose's front: json.dumps of these three keys, LPUSH.
        result = await queue_as_model_compose(client, "TASK1", "RUN1", {"prompt": "Say hi"})
        # model-compose's keys, and ours (which its front ignores).
        assert set(result) == {"task_id", "run_id", "status", "worker_id", "output"} | {
            "usage",
            "finish_reason",
        }
        assert result["usage"]["completion_tokens"] > 0
        assert result["task_id"] == "TASK1" and result["run_id"] == "RUN1"
        assert result["status"] == "completed"
        assert isinstance(result["output"], str) and result["output"]
        assert result["worker_id"] == service.worker.worker_id  # type: ignore[union-attr]
        # The same result is SET at the channel's name, with result_ttl (1h).
        assert json.loads(client.get(f"{QUEUE}:chat:RUN1")) == result  # type: ignore[arg-type]
        assert 3500 < client.ttl(f"{QUEUE}:chat:RUN1") <= 3600
        # Nothing left held.
        assert client.llen(f"{QUEUE}:chat") == 0
        assert not client.keys(f"{QUEUE}:~taken:*")
    finally:
        await service.stop()
    # A clean stop leaves no record of the worker.
    assert client.hlen(f"{QUEUE}:~workers") == 0 and not client.keys(f"{QUEUE}:~lease:*")


async def test_a_streamed_run_is_written_as_model_compose_reads_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    service = await started_worker(redis_server, tmp_path, streaming=True)
    client = redis_server.client()
    try:
        started = await queue_as_model_compose(client, "TASK2", "RUN2", {"prompt": "Count to 3"})
        assert started["status"] == "streaming"
        assert started["stream_key"] == f"{QUEUE}:chat:RUN2:stream"
        # model-compose's front: XREAD from 0-0 until event=done.
        last, text, events = "0-0", [], []
        while "done" not in events:
            reply = await asyncio.to_thread(client.xread, {started["stream_key"]: last}, 16, 5000)
            assert reply, "the stream stalled"
            for _, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id
                    events.append(fields[b"event"].decode())
                    if fields[b"event"] == b"chunk":
                        text.append(fields[b"data"].decode())
        assert events[-1] == "done" and events.count("chunk") > 1
        assert set(events) == {"chunk", "done"}
        stored = json.loads(client.get(f"{QUEUE}:chat:RUN2"))  # type: ignore[arg-type]
        assert stored["status"] == "completed" and stored["output"] == "".join(text)
        assert 3500 < client.ttl(started["stream_key"]) <= 3600
    finally:
        await service.stop()


def fake_model_compose_worker(
    server: RedisServer, seen: list[dict[str, Any]], answer: Any, stream: list[str] | None = None
) -> threading.Thread:
    """model-compose's worker, for one run: BRPOP, then SETEX + PUBLISH its
    result, or (streaming) PUBLISH the stream's start and XADD its chunks."""

    def work() -> None:
        client = server.client()
        key, raw = client.brpop([f"{QUEUE}:chat"], timeout=30)  # type: ignore[misc]
        message = json.loads(raw)
        seen.append(message)
        channel = f"{key.decode()}:{message['run_id']}"
        base = {"task_id": message["task_id"], "run_id": message["run_id"], "worker_id": "MC"}
        if stream is None:
            result = json.dumps({**base, "status": "completed", "output": answer}, default=str)
            client.setex(channel, 3600, result)
            client.publish(channel, result)
            return
        stream_key = f"{channel}:stream"
        client.publish(
            channel, json.dumps({**base, "status": "streaming", "stream_key": stream_key})
        )
        for chunk in stream:
            client.xadd(stream_key, {"event": "chunk", "data": chunk})
        client.xadd(stream_key, {"event": "done"})
        client.expire(stream_key, 3600)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_our_front_queues_what_a_model_compose_worker_reads(
    redis_server: RedisServer, live_server: Any
) -> None:
    seen: list[dict[str, Any]] = []
    worker = fake_model_compose_worker(redis_server, seen, {"text": "hi\n"})
    front = live_server(front_file(redis_server.port))
    response = httpx.post(
        f"{front.url}/api/workflows/runs",
        json={"workflow_id": "chat", "input": {"text": "hi"}, "wait_for_completion": True},
        timeout=30,
    )
    worker.join(5)
    assert response.status_code == 200, response.text
    assert response.json()["output"] == {"text": "hi\n"}
    assert set(seen[0]) == {"task_id", "run_id", "input"}
    assert seen[0]["input"] == {"text": "hi"}


def test_our_front_streams_what_a_model_compose_worker_streams(
    redis_server: RedisServer, live_server: Any
) -> None:
    seen: list[dict[str, Any]] = []
    chunks = ["Hel", "lo", " 42"]
    worker = fake_model_compose_worker(redis_server, seen, None, stream=chunks)
    front = live_server(front_file(redis_server.port))
    with httpx.stream(
        "POST",
        f"{front.url}/api/workflows/runs",
        json={"workflow_id": "chat", "input": {"prompt": "hi"}},
        headers={"accept": "text/event-stream"},
        timeout=30,
    ) as response:
        events = [
            json.loads(line.removeprefix("data: "))
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    worker.join(5)
    assert [e["text"] for e in events if e["type"] == "delta"] == chunks
    assert events[-1]["type"] == "done" and events[-1]["output"] == "Hello 42"


def test_a_cancel_is_published_as_model_compose_workers_read_it(
    redis_server: RedisServer, live_server: Any
) -> None:
    """A run a (model-compose) worker holds, cancelled at the front: the
    worker hears {"task_id"} on `{name}:cancel`."""
    client = redis_server.client()
    cancels = client.pubsub()
    cancels.subscribe(f"{QUEUE}:cancel")
    assert cancels.get_message(timeout=5)["type"] == "subscribe"
    front = live_server(front_file(redis_server.port))
    task = httpx.post(
        f"{front.url}/api/workflows/runs",
        json={"workflow_id": "chat", "input": {"prompt": "hi"}, "wait_for_completion": False},
        timeout=30,
    ).json()
    _, raw = client.brpop([f"{QUEUE}:chat"], timeout=10)  # type: ignore[misc]
    message = json.loads(raw)
    httpx.post(f"{front.url}/api/tasks/{task['task_id']}/cancel", timeout=10)
    got = cancels.get_message(ignore_subscribe_messages=True, timeout=10)
    assert got is not None and json.loads(got["data"]) == {"task_id": message["task_id"]}
    assert httpx.get(f"{front.url}/api/tasks/{task['task_id']}").json()["status"] == "cancelled"


def test_text_waiting_for_redis_goes_as_one_entry_per_stretch_of_a_kind() -> None:
    from runtime.queue.stream_writer import merged

    pieces = [("<", True), ("think", True), ("Hel", False), ("lo", False), ("!", True)]
    assert merged(pieces) == [("<think", True), ("Hello", False), ("!", True)]
    assert merged([]) == []
