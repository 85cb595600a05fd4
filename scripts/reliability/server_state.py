"""What the server says about itself after a run: `GET /api/models` (slots
busy, requests waiting, runs in progress) until it is idle, and whether its
log shows a traceback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from scripts.reliability.compose import BASE_PATH


async def models_status(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(f"{BASE_PATH}/models")
    response.raise_for_status()
    status: dict[str, Any] = response.json()
    return status


def is_idle(status: dict[str, Any]) -> bool:
    return status["running_tasks"] == 0 and all(
        model["busy"] == 0 and model["waiting"] == 0 for model in status["models"]
    )


async def wait_until_idle(client: httpx.AsyncClient, timeout_s: float = 30.0) -> dict[str, Any]:
    """The first idle status, or the last one seen when `timeout_s` runs out
    (a request's cancellation reaches the engine at its next step, so a
    server that was just left by its clients may need a moment)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = await models_status(client)
        if is_idle(status) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


# Lines that mean something failed inside the server, whoever caught it.
_FAILURE_MARKERS = ("Traceback (most recent call last)", "Exception in ASGI application")


def log_failures(log: str) -> list[str]:
    """The log lines that show an exception inside the server."""
    return [line for line in log.splitlines() if any(m in line for m in _FAILURE_MARKERS)]
