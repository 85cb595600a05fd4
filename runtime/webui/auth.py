"""The Web UI's login when `controller.api_key` is set: who is logged in, and
the ASGI gate in front of every UI route.

A browser proves it knows the key once, on the login page or with
`?token=<key>` in the address, and its session is then logged in until it
logs out (/logout) or the server stops. The session cookie only names a
random session id (signed by Starlette's SessionMiddleware with a secret made
for this run of the server, never derived from the key); which ids are logged
in is known only here, in memory. Wrong keys are counted per client address
(runtime.server.rate_limit), the form's and the links' together.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from nicegui import __version__ as nicegui_version
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from runtime.server.middleware import client_address, key_matches
from runtime.server.rate_limit import FailureLimiter, too_many_failures

Session = MutableMapping[str, Any]

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
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


class TooManyFailures(Exception):
    """The client sent too many wrong keys: it may try again in `seconds`."""

    def __init__(self, seconds: int) -> None:
        super().__init__(too_many_failures(seconds))
        self.seconds = seconds


class WebUIAuth:
    """Logged-in sessions, the NiceGUI clients of open login pages (whose
    socket may connect before anyone has logged in: it is how the form is
    sent), and what each session's open pages do when it logs out."""

    def __init__(self, api_key: str) -> None:
        self._key = api_key
        self._sessions: set[str] = set()
        self._on_log_out: dict[str, set[Callable[[], None]]] = {}
        self.login_clients: set[str] = set()
        self.failures = FailureLimiter()
        # Signs the session cookie (and is NiceGUI's storage_secret): random
        # for each run of the server, so sessions end when it stops.
        self.session_secret = secrets.token_urlsafe(32)

    def accepts(self, candidate: str) -> bool:
        return key_matches(candidate, self._key)

    def check(self, candidate: str, client: str) -> bool:
        """Whether `candidate` is the key, counting a wrong one against the
        client's address; raises TooManyFailures, without looking at the
        candidate, while the address waits."""
        wait = self.failures.retry_after(client)
        if wait is not None:
            raise TooManyFailures(wait)
        if self.accepts(candidate):
            self.failures.succeed(client)
            return True
        self.failures.fail(client)
        return False

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

    def log_out(self, session: Session) -> None:
        """End the session's login, and send its open pages (every tab of the
        browser) to the login page. The next login gets a new session id."""
        session_id = session.pop(_SESSION_ID, None)
        if not isinstance(session_id, str):
            return
        self._sessions.discard(session_id)
        for leave in list(self._on_log_out.pop(session_id, ())):
            leave()

    def when_logged_out(self, session: Session, leave: Callable[[], None]) -> Callable[[], None]:
        """Call `leave` when the session logs out; returns what forgets it
        (for a page that closes first)."""
        session_id = self.session_id(session)
        self._on_log_out.setdefault(session_id, set()).add(leave)
        return lambda: self._on_log_out.get(session_id, set()).discard(leave)

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
        elif scope["type"] == "http" and path == LOGOUT_PATH:
            self.auth.log_out(session)
            await RedirectResponse(LOGIN_PATH, status_code=303)(scope, receive, send)
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
        try:
            accepted = self.auth.check(token, client_address(scope))
        except TooManyFailures as waiting:
            body = {"error": {"type": "rate_limited", "message": str(waiting)}}
            headers = {"Retry-After": str(waiting.seconds)}
            await JSONResponse(body, status_code=429, headers=headers)(scope, receive, send)
            return
        if accepted:
            self.auth.log_in(self.auth.session_id(session))
            # The UI is one page, whatever the path: going to / also keeps a
            # crafted path (`//elsewhere.example`) from becoming an open redirect.
            target = f"/?{rest}" if rest else "/"
        else:
            self.auth.tell(session, WRONG_TOKEN)
            target = LOGIN_PATH
        await RedirectResponse(target, status_code=303)(scope, receive, send)
