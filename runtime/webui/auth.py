"""The Web UI's login when `controller.api_key` is set: who is logged in, and
the ASGI gate in front of every UI route.

A browser proves it knows the key once, on the login page or with
`?token=<key>` in the address, and its session is then logged in until the
server stops. The session cookie only names a random session id (signed by
Starlette's SessionMiddleware with a secret made for this run of the
server, never derived from the key); which ids are logged in is known only
here, in memory.
"""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from nicegui import __version__ as nicegui_version
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from runtime.server.middleware import key_matches

Session = MutableMapping[str, Any]

LOGIN_PATH = "/login"
TOKEN_PARAMETER = "token"
SESSION_COOKIE = "model_compose_ui"
_SESSION_ID = "login"
_NOTICE = "login_notice"

# NiceGUI's own scripts, styles and fonts: the same files in every install,
# needed to draw the login page, and telling nothing about this server.
_PUBLIC_PREFIXES = (f"/_nicegui/{nicegui_version}/",)
_PUBLIC_PATHS = frozenset({LOGIN_PATH, "/favicon.ico"})
_SOCKET_PREFIX = "/_nicegui_ws/"
# NiceGUI's own routes (socket, uploads, downloads, media): a 401, not a
# redirect to a page nobody reads.
_INTERNAL_PREFIX = "/_nicegui"
WRONG_TOKEN = "The token in the address is not the API key."


class WebUIAuth:
    """Logged-in sessions, and the NiceGUI clients of open login pages (whose
    socket may connect before anyone has logged in: it is how the form is
    sent)."""

    def __init__(self, api_key: str) -> None:
        self._key = api_key
        self._sessions: set[str] = set()
        self.login_clients: set[str] = set()
        # Signs the session cookie (and is NiceGUI's storage_secret): random
        # for each run of the server, so sessions end when it stops.
        self.session_secret = secrets.token_urlsafe(32)

    def accepts(self, candidate: str) -> bool:
        return key_matches(candidate, self._key)

    def is_logged_in(self, session: Session) -> bool:
        return session.get(_SESSION_ID) in self._sessions

    def session_id(self, session: Session) -> str:
        """The session's id, made now if it has none (call this before the
        response starts: the cookie is written then)."""
        if not isinstance(session.get(_SESSION_ID), str):
            session[_SESSION_ID] = secrets.token_urlsafe(32)
        return str(session[_SESSION_ID])

    def log_in(self, session_id: str) -> None:
        self._sessions.add(session_id)

    def tell(self, session: Session, notice: str) -> None:
        """A message for the next login page this session opens."""
        session[_NOTICE] = notice

    def take_notice(self, session: Session) -> str:
        return str(session.pop(_NOTICE, ""))


def is_public(path: str) -> bool:
    if ".." in path.split("/"):
        return False
    return path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES)


class WebUIAuthMiddleware:
    """Every UI route needs a logged-in session, except the login page, the
    static files it needs, and the socket of an open login page. Pages
    redirect to the login page; NiceGUI's own routes answer 401, sockets are
    refused. Runs inside Starlette's SessionMiddleware."""

    def __init__(self, app: ASGIApp, auth: WebUIAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        session: Session = scope["session"]
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        path = scope["path"]
        if scope["type"] == "http" and any(name == TOKEN_PARAMETER for name, _ in query):
            await self._token_login(scope, session, query, receive, send)
        elif self.auth.is_logged_in(session):
            if path == LOGIN_PATH and scope["method"] in ("GET", "HEAD"):
                await RedirectResponse("/", status_code=303)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        elif is_public(path) or self._is_login_socket(path, query):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await WebSocketClose(code=1008)(scope, receive, send)
        elif scope["method"] in ("GET", "HEAD") and not path.startswith(_INTERNAL_PREFIX):
            await RedirectResponse(LOGIN_PATH, status_code=303)(scope, receive, send)
        else:
            response = JSONResponse(
                {"error": {"type": "unauthorized", "message": "log in to the Web UI first"}},
                status_code=401,
            )
            await response(scope, receive, send)

    def _is_login_socket(self, path: str, query: list[tuple[str, str]]) -> bool:
        client_id = dict(query).get("client_id")
        return path.startswith(_SOCKET_PREFIX) and client_id in self.auth.login_clients

    async def _token_login(
        self,
        scope: Scope,
        session: Session,
        query: list[tuple[str, str]],
        receive: Receive,
        send: Send,
    ) -> None:
        """`?token=<key>`: log the session in (or say the token was wrong) and
        redirect to the address without the token, so the key stays neither
        in the address bar nor in the history."""
        token = next(value for name, value in query if name == TOKEN_PARAMETER)
        rest = urlencode([(name, value) for name, value in query if name != TOKEN_PARAMETER])
        # uvicorn's access log reads the request line from this same scope
        # when the response starts: without the token there, it is not logged.
        scope["query_string"] = rest.encode("latin-1")
        if self.auth.accepts(token):
            self.auth.log_in(self.auth.session_id(session))
            # The UI is one page, whatever the path: going to / also keeps a
            # crafted path (`//elsewhere.example`) from becoming an open redirect.
            target = f"/?{rest}" if rest else "/"
        else:
            self.auth.tell(session, WRONG_TOKEN)
            target = LOGIN_PATH
        await RedirectResponse(target, status_code=303)(scope, receive, send)
