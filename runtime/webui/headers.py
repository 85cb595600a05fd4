"""Security headers on every Web UI response. Plain ASGI, so it also covers
NiceGUI's mounted app and its static files."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Everything the page loads comes from this server. NiceGUI needs inline
# scripts and styles and Vue's template compiler ('unsafe-eval'), so the
# policy's worth is in what it forbids: answers are model output rendered as
# markdown, and an image or script they name on another site is not fetched
# (nothing can be sent out that way), no other site may frame the page, and
# the page connects (socket.io) only to its own server.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
).encode()

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    # Answers are markdown and may hold links: the sites they lead to need not
    # learn where this UI runs.
    (b"referrer-policy", b"no-referrer"),
    # The UI runs models on a click: no other site may frame it (clickjacking).
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
