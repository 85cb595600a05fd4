"""ASGI middleware for what applies to every route: the API key and the
request body limit. Plain ASGI, so it also covers streaming responses."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def _send_error(
    send: Send,
    status: int,
    type_: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"error": {"type": type_, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def key_matches(candidate: str | bytes, key: str | bytes) -> bool:
    """Whether `candidate` is the API key. Both sides are hashed first, so
    the comparison takes the same time whatever the candidate's length, and
    hmac.compare_digest takes the same time wherever the digests differ."""

    def digest(value: str | bytes) -> bytes:
        return hashlib.sha256(value.encode() if isinstance(value, str) else value).digest()

    return hmac.compare_digest(digest(candidate), digest(key))


class ApiKeyMiddleware:
    """`Authorization: Bearer <key>` on every route but /health and CORS
    preflights. Compared in constant time; the key is never logged."""

    def __init__(
        self, app: ASGIApp, api_key: str, open_paths: Iterable[str] = ("/health",)
    ) -> None:
        self.app = app
        self.key = api_key
        self.open_paths = {path.rstrip("/") for path in open_paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_exempt(scope):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and key_matches(token.strip(), self.key):
            await self.app(scope, receive, send)
            return
        await _send_error(
            send,
            401,
            "unauthorized",
            "a valid API key is required: send 'Authorization: Bearer <key>'",
            [(b"www-authenticate", b"Bearer")],
        )

    def _is_exempt(self, scope: Scope) -> bool:
        # Exact paths: `/api/tasks/health` is a task lookup and needs the key.
        return scope["path"].rstrip("/") in self.open_paths or scope["method"] == "OPTIONS"


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413, whether or not the
    client sent a Content-Length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send, int(declared))
            return
        # Read the body here (at most `limit` bytes) and replay it to the app.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(send, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, size: int | None) -> None:
        actual = f"{size} bytes" if size is not None else f"more than {self.limit} bytes"
        await _send_error(
            send,
            413,
            "request_too_large",
            f"the request body is {actual}; the limit is {self.limit} bytes"
            " (controller.max_request_size)",
        )


def origins_list(origins: Any) -> list[str]:
    """`origins` as a list or a comma-separated string."""
    if isinstance(origins, str):
        return [o.strip() for o in origins.split(",") if o.strip()]
    return [str(o) for o in origins]
