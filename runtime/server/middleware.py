"""ASGI middleware for what applies to every route: the API key and the
request body limit. Plain ASGI, so it also covers streaming responses.

It runs before any route, so it answers its refusals itself: in the
model-compose API's shape, or under the OpenAI API's prefix in OpenAI's
(the error handlers of the mounted /v1 app never see these requests)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.server.openai_errors import openai_body, sentence
from runtime.server.rate_limit import FailureLimiter, too_many_failures


def is_under(path: str, prefix: str | None) -> bool:
    return bool(prefix) and (path == prefix or path.startswith(f"{prefix}/"))


def error_body(status: int, code: str, message: str, *, openai: bool) -> bytes:
    """A refusal's JSON: the model-compose API's `{"error": {"type",
    "message"}}`, or OpenAI's shape (`code` as its code)."""
    if openai:
        return json.dumps(openai_body(status, sentence(message), code=code)).encode()
    return json.dumps({"error": {"type": code, "message": message}}).encode()


async def send_error(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
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


def client_address(scope: Scope) -> str:
    """The client's address, as the rate limits count it."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def key_matches(candidate: str | bytes, key: str | bytes) -> bool:
    """Whether `candidate` is the API key. Both sides are hashed first, so
    the comparison takes the same time whatever the candidate's length, and
    hmac.compare_digest takes the same time wherever the digests differ."""

    def digest(value: str | bytes) -> bytes:
        return hashlib.sha256(value.encode() if isinstance(value, str) else value).digest()

    return hmac.compare_digest(digest(candidate), digest(key))


class ApiKeyMiddleware:
    """`Authorization: Bearer <key>` on every route but /health and CORS
    preflights. Compared in constant time; the key is never logged. An
    address that sent too many wrong keys waits (429, Retry-After).
    Refusals under `openai_prefix` are in OpenAI's shape."""

    def __init__(
        self,
        app: ASGIApp,
        api_key: str,
        open_paths: Iterable[str] = ("/health",),
        openai_prefix: str | None = None,
        limiter: FailureLimiter | None = None,
    ) -> None:
        self.app = app
        self.key = api_key
        self.open_paths = {path.rstrip("/") for path in open_paths}
        self.openai_prefix = openai_prefix
        self.limiter = limiter or FailureLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_exempt(scope):
            await self.app(scope, receive, send)
            return
        openai = is_under(scope["path"], self.openai_prefix)
        client = client_address(scope)
        # Checked before the key: a right key must not get through while the
        # address waits, or a 429 would tell a guesser which keys are wrong.
        wait = self.limiter.retry_after(client)
        if wait is not None:
            code = "rate_limit_exceeded" if openai else "rate_limited"
            body = error_body(429, code, too_many_failures(wait), openai=openai)
            await send_error(send, 429, body, [(b"retry-after", str(wait).encode())])
            return
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization")
        scheme, _, token = (authorization or b"").partition(b" ")
        if scheme.lower() == b"bearer" and key_matches(token.strip(), self.key):
            # No reset on success: a guesser may share the address (loopback)
            # with a client that has the key.
            await self.app(scope, receive, send)
            return
        if authorization is not None:  # a key that is wrong, not one forgotten
            self.limiter.fail(client)
        message = "a valid API key is required: send 'Authorization: Bearer <key>'"
        # "invalid_api_key": OpenAI's code for a missing or wrong key.
        code = "invalid_api_key" if openai else "unauthorized"
        body = error_body(401, code, message, openai=openai)
        await send_error(send, 401, body, [(b"www-authenticate", b"Bearer")])

    def _is_exempt(self, scope: Scope) -> bool:
        # Exact paths: `/api/tasks/health` is a task lookup and needs the key.
        return scope["path"].rstrip("/") in self.open_paths or scope["method"] == "OPTIONS"


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413, whether or not the
    client sent a Content-Length; in OpenAI's shape under `openai_prefix`."""

    def __init__(self, app: ASGIApp, limit: int, openai_prefix: str | None = None) -> None:
        self.app = app
        self.limit = limit
        self.openai_prefix = openai_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, send, int(declared))
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
                await self._too_large(scope, send, None)
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

    async def _too_large(self, scope: Scope, send: Send, size: int | None) -> None:
        actual = f"{size} bytes" if size is not None else f"more than {self.limit} bytes"
        message = (
            f"the request body is {actual}; the limit is {self.limit} bytes"
            " (controller.max_request_size)"
        )
        openai = is_under(scope["path"], self.openai_prefix)
        await send_error(send, 413, error_body(413, "request_too_large", message, openai=openai))
