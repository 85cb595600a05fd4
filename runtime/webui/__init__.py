"""The NiceGUI browser UI, served on the controller's webui port.

NiceGUI is imported only when the UI is mounted: the CLI and the API do not
pay for it when the compose file has no `webui` section.
"""

from __future__ import annotations

from fastapi import FastAPI

from runtime.service import Service


def mount_webui(app: FastAPI, service: Service, api_url: str) -> None:
    """Mount the UI for `service` on `app` (its own port). `api_url` is the
    model-compose API's base URL, for the curl commands the UI shows. When
    the compose file sets `controller.api_key`, the UI asks for it (see
    runtime.webui.auth)."""
    from nicegui import core, ui
    from starlette.middleware.sessions import SessionMiddleware

    from runtime.webui.auth import SESSION_COOKIE, WebUIAuth, WebUIAuthMiddleware
    from runtime.webui.headers import SecurityHeadersMiddleware
    from runtime.webui.page import build_root, page_title

    api_key = service.config.controller.api_key
    auth = WebUIAuth(api_key) if api_key else None
    app.state.webui_auth = auth  # for the tests
    if auth is not None:
        # Added first = innermost: the gate reads the session the cookie holds.
        app.add_middleware(WebUIAuthMiddleware, auth=auth)
        # NiceGUI finds this middleware and takes its secret as storage_secret.
        app.add_middleware(
            SessionMiddleware, secret_key=auth.session_secret, session_cookie=SESSION_COOKIE
        )
    # Outermost: the login page, redirects and refusals get the headers too.
    app.add_middleware(SecurityHeadersMiddleware)
    # NiceGUI lets its socket answer any origin; browsers do not apply CORS to
    # WebSockets, so only this origin check keeps other sites' pages off it.
    core.sio.eio.cors_allowed_origins = None
    ui.run_with(
        app,
        root=build_root(service, api_url, auth),
        title=page_title(service),
        show_welcome_message=False,
    )
