"""Counting HTTP requests for the metrics: by method, route template (never
the raw path, whose values are unbounded) and status, with their duration.
Plain ASGI, outermost, so it sees streams to their end and the refusals of
the other middleware (401, 413) too."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.metrics import ServiceMetrics

# Any other method is counted as "other": clients choose it.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route of a path no route serves (a 404).
UNMATCHED = "<unmatched>"
# The status of a request that ended with no answer begun: the client left
# (nginx's code for it).
CLIENT_LEFT = 499


@dataclass(frozen=True)
class RoutePattern:
    template: str  # the route's full path, as the app declares it: `/api/tasks/{task_id}`
    regex: re.Pattern[str]
    methods: frozenset[str] | None  # None: any method


def route_patterns(routes: Sequence[BaseRoute], prefix: str = "") -> list[RoutePattern]:
    """Every route of an app at its full path, in the order the router tries
    them, walking into included routers (FastAPI keeps each as one lazy
    route) and mounted apps (/v1)."""
    patterns = []
    for route in iter_route_contexts(routes):
        original, path = route.original_route, route.path
        if path is None:
            continue
        if isinstance(original, Mount):
            patterns += route_patterns(original.routes, prefix + path)
            continue
        regex, _, _ = compile_path(prefix + path)
        methods = getattr(route, "methods", None)
        patterns.append(RoutePattern(prefix + path, regex, frozenset(methods) if methods else None))
    return patterns


def route_template(patterns: Sequence[RoutePattern], method: str, path: str) -> str | None:
    """The template of the route a request goes to, picked as the router
    picks: the first that matches path and method, else the first that
    matches the path (its answer is a 405). Found before the request runs,
    so it names the route of a request that the key check refuses too."""
    partial = None
    for pattern in patterns:
        if pattern.regex.match(path):
            if pattern.methods is None or method in pattern.methods:
                return pattern.template
            partial = partial or pattern.template
    return partial


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self._patterns: list[RoutePattern] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "other"
        if self._patterns is None:  # at the first request: every route has been added by then
            self._patterns = route_patterns(self.routes)
        route = route_template(self._patterns, scope["method"], scope["path"]) or UNMATCHED
        status = CLIENT_LEFT

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception:
            if status == CLIENT_LEFT:  # no answer begun: Starlette's outer layer answers 500
                status = 500
            raise
        finally:
            self.metrics.request_finished(method, route, status, time.perf_counter() - started)
