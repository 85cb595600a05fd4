"""Running the server in this process: `model-compose up`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn

from runtime.config import ComposeConfig
from runtime.config.schema import HttpServerAdapter
from runtime.engine.pooled_model import IDLE_LOGGER
from runtime.errors import ModelComposeError
from runtime.host_names import is_loopback
from runtime.server.app import OPENAI_PREFIX, create_app, normal_base_path
from runtime.server.cors import allows_any_origin
from runtime.server.hosts import guard_hosts
from runtime.server.listening import listen
from runtime.service import CANCEL_GRACE, Service, ServiceState

Say = Callable[[str], None]


def first_adapter(config: ComposeConfig) -> HttpServerAdapter:
    return config.controller.http or HttpServerAdapter()


def endpoint(config: ComposeConfig, host: str | None, port: int | None) -> tuple[str, int, str]:
    """Host, port and base path: the first adapter's, unless overridden."""
    adapter = first_adapter(config)
    return host or adapter.host, port or adapter.port, normal_base_path(adapter.base_path)


def local_url(host: str, port: int) -> str:
    """The URL this machine reaches a server listening on `host` at: the
    loopback address for a server on every interface."""
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{local}:{port}"


class _Server(uvicorn.Server):
    """uvicorn, but a signal only starts a graceful stop of every server of
    the process (API and Web UI): /health turns 503 and the process exits 0
    afterwards (uvicorn would re-raise the signal)."""

    def __init__(self, config: uvicorn.Config, service: Service, group: list[_Server]) -> None:
        super().__init__(config)
        self.service = service
        self.group = group
        group.append(self)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for open responses, then cuts them at its own timeout
        # and only then runs the app's shutdown: start the service's clock
        # first, so in-flight runs are cancelled in time to end their streams
        # with a final event instead of being cut.
        self.service.begin_stop()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.service.state in (ServiceState.READY, ServiceState.STARTING):
            self.service.state = ServiceState.STOPPING
        for server in self.group:
            uvicorn.Server.handle_exit(server, sig, frame)
            if sig in (signal.SIGINT, signal.SIGTERM):
                server._captured_signals.clear()


class _SayHandler(logging.Handler):
    def __init__(self, say: Say) -> None:
        super().__init__(logging.INFO)
        self.say = say

    def emit(self, record: logging.LogRecord) -> None:
        self.say(record.getMessage())


@contextlib.contextmanager
def idle_lines(say: Say) -> Iterator[None]:
    """Print the lines of models unloaded after their keep_alive and loaded
    again: logged at INFO, which nothing else shows, yet they explain a
    first request that is slow."""
    idle = logging.getLogger(IDLE_LOGGER)
    handler, level = _SayHandler(say), idle.level
    idle.addHandler(handler)
    idle.setLevel(logging.INFO)
    try:
        yield
    finally:
        idle.removeHandler(handler)
        idle.setLevel(level)


def serve(config: ComposeConfig, host: str | None, port: int | None, say: Say) -> int:
    """Serve until stopped; the exit code (0 after a graceful stop)."""
    if config.controller.subscriber is not None and config.controller.http is None:
        from runtime.queue.process import serve_worker

        return serve_worker(config, say)
    host, port, base_path = endpoint(config, host, port)
    if not is_loopback(host) and not config.controller.api_key:
        say(
            f"WARNING: serving on {host}, reachable from other machines, with no API key: "
            "anyone who can reach this port can run your models. Set controller.api_key "
            "(e.g. api_key: ${env.MODEL_COMPOSE_API_KEY})."
        )
    if allows_any_origin(first_adapter(config).origins):
        say(
            'WARNING: origins: "*" lets any web page your browser opens call this API '
            "and read its answers; list the origins that need it instead."
        )
    sock = listen(host, port)
    webui = config.controller.webui
    if webui is not None and not is_loopback(webui.host) and not config.controller.api_key:
        # With an API key, the Web UI asks for it (runtime.webui.auth).
        say(
            f"WARNING: serving the Web UI on {webui.host}, reachable from other machines, "
            "with no API key: anyone who can reach its port can run your models. Set "
            "controller.api_key: the Web UI then asks for it."
        )
    ui_sock = listen(webui.host, webui.port) if webui is not None else None
    service = Service(config, status=lambda message: say(f"{message}…"))
    app = create_app(service)
    adapter_hosts = first_adapter(config).allowed_hosts
    guard_hosts(app, host, adapter_hosts, "controller.adapter.allowed_hosts", OPENAI_PREFIX)
    group: list[_Server] = []
    # uvicorn's own cut comes only after the service cancelled what still runs.
    timeout = math.ceil(service.shutdown_timeout + CANCEL_GRACE)

    def server_of(asgi_app: Any, on_host: str, on_port: int) -> _Server:
        settings = uvicorn.Config(
            asgi_app,
            host=on_host,
            port=on_port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=timeout,
        )
        return _Server(settings, service, group)

    server = server_of(app, host, port)
    url = f"http://{host}:{port}"
    ui_server: _Server | None = None
    if webui is not None:
        from fastapi import FastAPI

        from runtime.webui import mount_webui

        ui_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        mount_webui(ui_app, service, f"http://{local}:{port}{base_path}")
        guard_hosts(ui_app, webui.host, webui.allowed_hosts, "controller.webui.allowed_hosts")
        ui_server = server_of(ui_app, webui.host, webui.port)

    async def main() -> int:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        ui_serving = (
            asyncio.create_task(ui_server.serve(sockets=[ui_sock]))
            if ui_server is not None and ui_sock is not None
            else None
        )
        while app.state.starting is None and not serving.done():
            await asyncio.sleep(0.02)
        starting = app.state.starting
        if starting is not None:
            await asyncio.wait({serving, starting}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done() and not starting.cancelled() and starting.exception():
                error = starting.exception()
                failures = service.components.failures
                if len(failures) > 1:  # no model loaded: say which failed how
                    for component_id, failure in failures.items():
                        say(f"error: component '{component_id}' is unavailable: {failure}")
                else:
                    say(f"error: {error}")
                for each in group:
                    each.should_exit = True
                await asyncio.gather(serving, *([ui_serving] if ui_serving else []))
                return error.exit_code if isinstance(error, ModelComposeError) else 1
            if starting.done() and not serving.done():
                for component_id, failure in service.failed_components.items():
                    say(
                        f"warning: component '{component_id}' is unavailable: {failure} (its "
                        "requests answer 503 until the server restarts; the others serve)"
                    )
                ui = f", Web UI at http://{webui.host}:{webui.port}" if webui else ""
                say(
                    f"ready: model-compose API at {url}{base_path}, "
                    f"OpenAI-compatible API at {url}/v1{ui} (Ctrl-C to stop)"
                )
        await asyncio.gather(serving, *([ui_serving] if ui_serving else []))
        return 0

    with idle_lines(say):
        return asyncio.run(main())
