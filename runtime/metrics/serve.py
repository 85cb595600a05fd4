"""`serve_metrics`: `GET /metrics` for a process without the HTTP API (a
queue worker), on its own small server, behind the same API key check as
the API server's routes.

The server runs on the caller's event loop, the service's: each scrape
reads the service where its state changes, as the API server's /metrics
does. Signals stay the process's own: the caller stops the server with
`close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from runtime.errors import RuntimeFailure
from runtime.server.listening import listen
from runtime.server.middleware import ApiKeyMiddleware

if TYPE_CHECKING:
    from runtime.metrics.service_metrics import ServiceMetrics
    from runtime.service import Service

# How long the server may take to start answering on its bound socket.
START_TIMEOUT_S = 10.0


def metrics_response(metrics: ServiceMetrics, request: Request) -> Response:
    """The body of `GET /metrics`, in the format the scraper's Accept asks for."""
    body, content_type = metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)


def metrics_app(metrics: ServiceMetrics, api_key: str | None = None) -> ASGIApp:
    """An app answering only `GET /metrics`; with `api_key`, only to
    `Authorization: Bearer <api_key>` (401 JSON otherwise, as the API's)."""

    async def endpoint(request: Request) -> Response:
        return metrics_response(metrics, request)

    app = Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])
    if not api_key:
        return app
    return ApiKeyMiddleware(app, api_key=api_key, open_paths=())


class _Server(uvicorn.Server):
    """uvicorn, without its signal handlers: they would take the process's
    SIGINT and SIGTERM for this server alone."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass
class MetricsServer:
    """A running `serve_metrics` server; `await close()` stops it (idempotent)."""

    host: str
    port: int  # the bound one: the one asked for, or the system's pick for 0
    server: uvicorn.Server
    serving: asyncio.Task[None]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def close(self) -> None:
        self.server.should_exit = True
        await self.serving


async def serve_metrics(
    service: Service, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None
) -> MetricsServer:
    """Serve `service`'s metrics at `http://host:port/metrics` on the running
    event loop until `close()`; with `api_key` (the compose file's
    `controller.api_key`), only to `Authorization: Bearer <api_key>`. Port 0
    picks a free port (`MetricsServer.port` says which). Returns once the
    server listens; `RuntimeFailure` when the port cannot be bound."""
    sock = listen(host, port)
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        metrics_app(service.metrics, api_key),
        lifespan="off",
        log_config=None,  # the process's logging stays as it set it up
        log_level="warning",
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="metrics-server")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started and not serving.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        sock.close()
        raise RuntimeFailure(f"the metrics server on {host}:{bound_port} did not start")
    return MetricsServer(host, bound_port, server, serving)
