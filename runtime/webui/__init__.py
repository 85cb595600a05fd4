"""The NiceGUI browser UI, served on the controller's webui port.

NiceGUI is imported only when the UI is mounted: the CLI and the API do not
pay for it when the compose file has no `webui` section.
"""

from __future__ import annotations

from fastapi import FastAPI

from runtime.service import Service


def mount_webui(app: FastAPI, service: Service, api_url: str) -> None:
    """Mount the UI for `service` on `app` (its own port). `api_url` is the
    model-compose API's base URL, for the curl commands the UI shows."""
    from nicegui import ui

    from runtime.webui.headers import SecurityHeadersMiddleware
    from runtime.webui.page import build_root, page_title

    app.add_middleware(SecurityHeadersMiddleware)
    ui.run_with(
        app,
        root=build_root(service, api_url),
        title=page_title(service),
        show_welcome_message=False,
    )
