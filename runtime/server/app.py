"""The FastAPI app for one Service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from starlette.routing import Mount

from runtime import __version__
from runtime.config.units import parse_size
from runtime.server import (
    metrics_routes,
    model_routes,
    openai_responses,
    openai_routes,
    workflow_routes,
)
from runtime.server.cors import cors_middleware
from runtime.server.errors import install_error_handlers
from runtime.server.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from runtime.server.openai_errors import install_openai_handlers
from runtime.server.openapi import Served, document
from runtime.server.rate_limit import FailureLimiter
from runtime.server.request_metrics import RequestMetricsMiddleware
from runtime.service import Service, ServiceState

logger = logging.getLogger(__name__)


def normal_base_path(base_path: str) -> str:
    """`api`, `/api/` → `/api`; `` and `/` → ``."""
    path = "/" + base_path.strip("/")
    return "" if path == "/" else path


def log_start_failure(starting: asyncio.Task[None]) -> None:
    """Retrieve a failed start's error, so asyncio does not print it with a
    traceback; /health and `model-compose up` are what report it."""
    if not starting.cancelled() and starting.exception() is not None:
        logger.info("the models did not load: %s", starting.exception())


OPENAI_PREFIX = "/v1"


def openai_app(service: Service) -> FastAPI:
    """The OpenAI-compatible API, with its own error handlers; create_app
    mounts it at /v1 and documents its routes with the others."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.service = service
    app.state.created = int(time.time())
    install_openai_handlers(app)
    app.include_router(openai_routes.router)
    app.include_router(openai_responses.router)
    return app


class PrefixMount(Mount):
    """A mount that owns every path under its prefix: Starlette's pattern
    stops at a newline, and such a path is the mounted app's 404 too."""

    def __init__(self, path: str, app: FastAPI) -> None:
        super().__init__(path, app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


def create_app(service: Service) -> FastAPI:
    """Routes at the first adapter's `base_path` (the OpenAI API at /v1);
    the app's lifespan loads the models in the background and stops the
    service on shutdown."""
    controller = service.config.controller
    adapter = controller.http
    base_path = normal_base_path(adapter.base_path if adapter else "")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.state == ServiceState.STARTING:
            app.state.starting = asyncio.create_task(service.start())
            app.state.starting.add_done_callback(log_start_failure)
        yield
        starting = getattr(app.state, "starting", None)
        if starting is not None and not starting.done():
            starting.cancel()
        await service.stop()

    app = FastAPI(title=controller.name or "model-compose", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.state.starting = None
    # Wrong keys per client address (ApiKeyMiddleware); here for the tests.
    app.state.key_failures = FailureLimiter()
    install_error_handlers(app)
    app.include_router(workflow_routes.router, prefix=base_path)
    app.include_router(model_routes.router, prefix=base_path)
    app.include_router(metrics_routes.router, prefix=base_path)
    if base_path:
        # Also at the root, where health checks and scrapers look by default.
        app.add_api_route(
            "/health", workflow_routes.health, methods=["GET"], include_in_schema=False
        )
        app.add_api_route(
            "/metrics", metrics_routes.metrics, methods=["GET"], include_in_schema=False
        )
    app.router.routes.append(PrefixMount(OPENAI_PREFIX, openai_app(service)))
    documented = APIRouter()  # the /v1 routes, as the document names them
    documented.include_router(openai_routes.router, prefix=OPENAI_PREFIX)
    documented.include_router(openai_responses.router, prefix=OPENAI_PREFIX)
    open_paths = ("/health", f"{base_path}/health")
    served = Served(
        workflows=[w.id for w in service.config.workflows] + ["__default__"],
        models=list(openai_routes.served_models(service.config)),
        openai_prefix=OPENAI_PREFIX,
        api_key=bool(controller.api_key),
        open_paths=open_paths,
    )
    app.openapi = lambda: document(app, served, documented.routes)  # type: ignore[method-assign]
    # Added last = outermost: CORS answers preflights before the key check.
    if controller.api_key:
        app.add_middleware(
            ApiKeyMiddleware,
            api_key=controller.api_key,
            open_paths=open_paths,
            openai_prefix=OPENAI_PREFIX,
            limiter=app.state.key_failures,
        )
    app.add_middleware(
        BodyLimitMiddleware,
        limit=parse_size(controller.max_request_size),
        openai_prefix=OPENAI_PREFIX,
    )
    app.add_middleware(cors_middleware, origins=adapter.origins if adapter else None)
    # Outermost: counts what the layers above refuse or answer (401, 413, preflights).
    app.add_middleware(RequestMetricsMiddleware, metrics=service.metrics, routes=app.routes)
    return app
