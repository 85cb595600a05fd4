"""The Host header check that keeps web pages off a server on loopback.

DNS rebinding: a page on `evil.example` makes its name resolve to 127.0.0.1,
and the browser then lets it read this server's answers as its own origin's.
The browser still sends `Host: evil.example`, so a server that only listens
on loopback answers only Hosts that name loopback (as Ollama does), its own
host, and the names the compose file allows. A server on another address is
meant to be reached by name, so it answers any Host unless the file lists
`allowed_hosts`.

Starlette's TrustedHostMiddleware matches names, but not loopback by address
(127.0.0.2, `[::1]` with any port) and it answers in plain text; this one
answers in the API's JSON shape, saying how to allow the Host.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from runtime.host_names import is_loopback, matches, request_host
from runtime.server.middleware import error_body, is_under, send_error

if TYPE_CHECKING:
    from fastapi import FastAPI


class HostCheckMiddleware:
    """Refuse requests whose Host is not loopback, `host` (the address the
    server listens on), or one of `allowed`: 403 in the API's error shape (in
    OpenAI's under `openai_prefix`); a socket is closed. `setting` names the
    key that allows more, for the message."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        allowed: Iterable[str],
        setting: str,
        openai_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.host = host.lower().removeprefix("[").removesuffix("]")
        if self.host in ("0.0.0.0", "::"):
            self.host = ""  # every interface: no Host names it
        self.allowed = list(allowed)
        self.setting = setting
        self.openai_prefix = openai_prefix

    def allows(self, header: str | None) -> bool:
        # A request without a Host is no browser's (HTTP/1.0 tools): nothing
        # to rebind.
        if header is None:
            return True
        host = request_host(header)
        if host is None:
            return False
        return (
            is_loopback(host)
            or (bool(self.host) and host == self.host)
            or any(matches(host, pattern) for pattern in self.allowed)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        values = [value for name, value in scope.get("headers", []) if name == b"host"]
        header = values[0].decode("latin-1") if len(values) == 1 else None
        if len(values) < 2 and self.allows(header):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await WebSocketClose(code=1008)(scope, receive, send)
        else:
            named = request_host(header) if header is not None else None
            message = (
                f"the Host '{named or header or '(several)'}' is not allowed: this server "
                f"answers only requests to localhost, 127.0.0.1 or [::1]"
                f"{'' if not self.host or is_loopback(self.host) else f', {self.host}'}"
                f"{''.join(f', {pattern}' for pattern in self.allowed)}; to reach it by "
                f"another name, add the name to {self.setting} in the compose file"
            )
            openai = is_under(scope["path"], self.openai_prefix)
            await send_error(send, 403, error_body(403, "host_not_allowed", message, openai=openai))


def guard_hosts(
    app: FastAPI,
    host: str,
    allowed_hosts: list[str] | None,
    setting: str,
    openai_prefix: str | None = None,
) -> None:
    """Check the Host of every request `app` answers, when it listens on
    loopback or the file lists `allowed_hosts`; outermost, so a refused Host
    reaches nothing else (CORS preflights included)."""
    if is_loopback(host) or allowed_hosts:
        app.add_middleware(
            HostCheckMiddleware,
            host=host,
            allowed=allowed_hosts or [],
            setting=setting,
            openai_prefix=openai_prefix,
        )
