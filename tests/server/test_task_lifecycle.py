"""Tasks over HTTP: retention, the bounded store, the concurrency limit,
shutdown; and the TaskStore itself on a fake clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from runtime.errors import NotFoundError
from runtime.workflow.tasks import Task, TaskStatus, TaskStore, TooManyTasksError
from tests.server.composes import poll, run_body, writer_compose
from tests.server.conftest import make_app

Client = Callable[..., TestClient]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def finished_task(clock: FakeClock) -> Task:
    task = Task("write")
    task.finish(TaskStatus.COMPLETED, output="text", now=clock.now)
    return task


def test_a_finished_task_expires_after_the_retention() -> None:
    clock = FakeClock()
    store = TaskStore(max_tasks=10, retention=60, clock=clock)
    task = store.add(finished_task(clock))
    clock.now += 60
    assert store.get(task.id) is task
    clock.now += 0.5
    with pytest.raises(NotFoundError, match="finished tasks are kept for 60 seconds"):
        store.get(task.id)
    assert len(store) == 0


def test_a_running_task_never_expires() -> None:
    clock = FakeClock()
    store = TaskStore(max_tasks=10, retention=1, clock=clock)
    task = store.add(Task("write"))
    clock.now += 3600
    assert store.get(task.id) is task
    # Its retention starts when it finishes.
    task.finish(TaskStatus.CANCELLED, now=clock.now)
    clock.now += 1
    assert store.get(task.id) is task
    clock.now += 1
    with pytest.raises(NotFoundError):
        store.get(task.id)


def test_a_full_store_evicts_its_oldest_finished_task() -> None:
    clock = FakeClock()
    store = TaskStore(max_tasks=3, retention=600, clock=clock)
    running = store.add(Task("write"))
    oldest = store.add(finished_task(clock))
    newer = store.add(finished_task(clock))
    added = store.add(Task("write"))
    assert len(store) == 3
    with pytest.raises(NotFoundError):
        store.get(oldest.id)
    assert [store.get(t.id) for t in (running, newer, added)] == [running, newer, added]


def test_a_store_full_of_running_tasks_refuses_a_new_one() -> None:
    store = TaskStore(max_tasks=2, retention=600, clock=FakeClock())
    store.add(Task("write"))
    store.add(Task("write"))
    with pytest.raises(TooManyTasksError) as refused:
        store.add(Task("write"))
    assert str(refused.value) == (
        "all 2 task slots hold running tasks (controller.max_tasks); retry later"
    )
    assert len(store) == 2


def test_a_finished_task_can_be_polled_until_the_retention_ends(client_for: Client) -> None:
    client = client_for(writer_compose(task_retention="300ms"))
    task = client.post("/api/workflows/runs", json=run_body()).json()
    assert client.get(f"/api/tasks/{task['task_id']}").json() == task
    time.sleep(0.4)
    gone = client.get(f"/api/tasks/{task['task_id']}")
    assert gone.status_code == 404
    assert gone.json() == {
        "error": {
            "type": "not_found",
            "message": f"unknown task '{task['task_id']}' (finished tasks are kept for "
            "0.3 seconds)",
        }
    }


def test_a_full_task_store_answers_503_then_makes_room_from_finished_tasks(
    client_for: Client,
) -> None:
    client = client_for(writer_compose(max_tasks=1))
    long = run_body(max_tokens=1000, wait_for_completion=False)
    first = client.post("/api/workflows/runs", json=long).json()
    refused = client.post("/api/workflows/runs", json=run_body())
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": {
            "type": "server_busy",
            "message": "all 1 task slots hold running tasks (controller.max_tasks); retry later",
        }
    }
    client.post(f"/api/tasks/{first['task_id']}/cancel")
    second = client.post("/api/workflows/runs", json=run_body())
    assert second.json()["status"] == "completed"
    assert client.get(f"/api/tasks/{first['task_id']}").status_code == 404


def test_a_run_over_the_concurrency_limit_waits_pending(client_for: Client) -> None:
    client = client_for(writer_compose(max_concurrent_count=1))
    first = client.post(
        "/api/workflows/runs", json=run_body(max_tokens=1000, wait_for_completion=False)
    ).json()
    second = client.post("/api/workflows/runs", json=run_body(wait_for_completion=False)).json()
    assert poll(client, first["task_id"], lambda t: t["status"] != "pending")["status"] == (
        "processing"
    )
    time.sleep(0.2)
    assert client.get(f"/api/tasks/{second['task_id']}").json()["status"] == "pending"
    client.post(f"/api/tasks/{first['task_id']}/cancel")
    done = poll(client, second["task_id"], lambda t: t["status"] == "completed")
    assert done["status"] == "completed"


def test_cancelling_a_pending_task_cancels_it_before_it_runs(client_for: Client) -> None:
    client = client_for(writer_compose(max_concurrent_count=1))
    first = client.post(
        "/api/workflows/runs", json=run_body(max_tokens=1000, wait_for_completion=False)
    ).json()
    poll(client, first["task_id"], lambda t: t["status"] == "processing")
    second = client.post("/api/workflows/runs", json=run_body(wait_for_completion=False)).json()
    assert second["status"] == "pending"
    cancelled = client.post(f"/api/tasks/{second['task_id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert client.get(f"/api/tasks/{first['task_id']}").json()["status"] == "processing"
    client.post(f"/api/tasks/{first['task_id']}/cancel")


async def test_health_is_503_while_the_server_shuts_down(tmp_path: Path) -> None:
    app = make_app(writer_compose(shutdown_timeout="200ms"), tmp_path)
    service = app.state.service
    await service.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        long = run_body(max_tokens=1000, wait_for_completion=False)
        task = (await client.post("/api/workflows/runs", json=long)).json()
        stopping = asyncio.create_task(service.stop())
        await asyncio.sleep(0.05)
        health = await client.get("/api/health")
        assert health.status_code == 503
        assert health.json() == {"status": "stopping"}
        refused = await client.post("/api/workflows/runs", json=run_body())
        assert refused.status_code == 503
        assert refused.json() == {
            "error": {"type": "unavailable", "message": "the server is shutting down"}
        }
        await asyncio.wait_for(stopping, 10)
        # The running task outlived the shutdown timeout: it was cancelled.
        after = await client.get(f"/api/tasks/{task['task_id']}")
        assert after.json()["status"] == "cancelled"
