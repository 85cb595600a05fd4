"""`GET {base_path}/metrics`: the service's metrics in Prometheus's text
format (or OpenMetrics, if the scraper asks), read at scrape time. Behind the
API key like every route but /health. It does not wait for the models: a
server that is still loading them reports that too."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from runtime.metrics.serve import metrics_response
from runtime.server.deps import ServiceDep

router = APIRouter()


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "The metrics, in Prometheus's text exposition format."}},
)
async def metrics(service: ServiceDep, request: Request) -> Response:
    # async: the collectors read the service on its own event loop.
    return metrics_response(service.metrics, request)
