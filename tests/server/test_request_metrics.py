"""Requests are counted by route template, method and status, on a tiny app
with the same shapes as ours: an included router with a prefix, a mounted
app, a stream, a failing route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from runtime.config import ComposeConfig
from runtime.metrics import ServiceMetrics
from runtime.server.request_metrics import RequestMetricsMiddleware
from runtime.service import Service
from tests.metrics.scrape import parse, value
from tests.server.composes import writer_compose

STREAM_S = 0.2


def tiny_app(metrics: ServiceMetrics) -> FastAPI:
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @router.post("/items")
    async def add() -> dict[str, str]:
        return {}

    mounted = FastAPI()
    inner = APIRouter()

    @inner.post("/chat/{name}")
    async def chat(name: str) -> dict[str, str]:
        return {"name": name}

    mounted.include_router(inner)
    app = FastAPI()
    app.include_router(router, prefix="/api")
    app.mount("/v1", mounted)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            for piece in (b"a", b"b"):
                await asyncio.sleep(STREAM_S / 2)
                yield piece

        return StreamingResponse(pieces())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, routes=app.routes)
    return app


@pytest.fixture
def metrics(compose: Callable[[str], ComposeConfig]) -> ServiceMetrics:
    return Service(compose(writer_compose())).metrics  # never started: no model


def count(metrics: ServiceMetrics, **labels: str) -> float:
    text = metrics.exposition(None)[0].decode()
    return value(parse(text), "model_compose_http_requests_total", **labels)


def test_requests_are_counted_by_route_template_not_by_path(metrics: ServiceMetrics) -> None:
    client = TestClient(tiny_app(metrics))
    for item in (1, 2, 3):
        assert client.get(f"/api/items/{item}").status_code == 200
    assert client.post("/api/items").status_code == 200
    assert client.post("/v1/chat/one").status_code == 200
    assert client.post("/v1/chat/two").status_code == 200
    assert count(metrics, method="GET", route="/api/items/{item_id}", status="200") == 3
    assert count(metrics, method="POST", route="/api/items", status="200") == 1
    assert count(metrics, method="POST", route="/v1/chat/{name}", status="200") == 2


def test_errors_are_counted_with_their_status(metrics: ServiceMetrics) -> None:
    client = TestClient(tiny_app(metrics), raise_server_exceptions=False)
    assert client.get("/api/items/x").status_code == 422  # FastAPI's own, on this tiny app
    assert client.put("/api/items/1").status_code == 405
    assert client.get("/nothing/here").status_code == 404
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/boom").status_code == 500
    assert client.request("BREW", "/api/items/1").status_code == 405
    assert count(metrics, route="/api/items/{item_id}", status="422") == 1
    assert count(metrics, method="PUT", route="/api/items/{item_id}", status="405") == 1
    assert count(metrics, method="GET", route="<unmatched>", status="404") == 2
    assert count(metrics, method="GET", route="/boom", status="500") == 1
    # A method clients make up is one label value, not one per name.
    assert count(metrics, method="other", route="/api/items/{item_id}", status="405") == 1


def test_a_stream_is_counted_when_it_ends_with_its_whole_duration(
    metrics: ServiceMetrics,
) -> None:
    client = TestClient(tiny_app(metrics))
    assert client.get("/stream").text == "ab"
    samples = parse(metrics.exposition(None)[0].decode())
    route = {"method": "GET", "route": "/stream"}
    assert value(samples, "model_compose_http_requests_total", **route, status="200") == 1
    assert value(samples, "model_compose_http_request_duration_seconds_sum", **route) >= STREAM_S


def test_each_service_has_its_own_registry(compose: Callable[[str], ComposeConfig]) -> None:
    from prometheus_client import REGISTRY

    first, second = (Service(compose(writer_compose())).metrics for _ in range(2))
    TestClient(tiny_app(first)).post("/api/items")
    assert count(first, route="/api/items") == 1
    assert count(second, route="/api/items") == 0
    assert not [m for m in REGISTRY.collect() if m.name.startswith("model_compose_")]
