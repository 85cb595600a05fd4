"""The NiceGUI browser UI, served on the controller's webui port."""

from __future__ import annotations

from fastapi import FastAPI

from runtime.service import Service


def mount_webui(app: FastAPI, service: Service, api_url: str) -> None:
    """Mount the UI for `service` on `app` (its own port). `api_url` is the
    model-compose API's base URL, for the curl commands the UI shows."""
    from nicegui import ui

    def root() -> None:
        ui.label(service.config.workflow(None).title or "model-compose")

    ui.run_with(app, root=root, title="model-compose", show_welcome_message=False)
