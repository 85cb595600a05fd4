"""The page: one per compose file, one tab per workflow, the model panel.

Every browser tab gets its own `WorkflowPage` (NiceGUI calls the root
function once per client), so its forms, runs, streams and chats are its own.
"""

from __future__ import annotations

from collections.abc import Callable

from nicegui import Client, context, ui

from runtime.service import Service
from runtime.webui.auth import LOGIN_PATH, LOGOUT_PATH, WebUIAuth
from runtime.webui.login import LoginPage
from runtime.webui.model_panel import ModelPanel
from runtime.webui.workflow_view import WorkflowView


def page_title(service: Service) -> str:
    config = service.config
    if config.controller.name:
        return config.controller.name
    if len(config.workflows) == 1 and config.workflows[0].title:
        return config.workflows[0].title
    return "model-compose"


class WorkflowPage:
    def __init__(self, service: Service, api_url: str, auth: WebUIAuth | None = None) -> None:
        self.service = service
        self.views: list[WorkflowView] = []
        config = service.config
        ui.page_title(page_title(service))
        with ui.header().classes("items-center bg-primary"):
            ui.label(config.controller.name or "model-compose").classes("text-h6")
            if auth is not None:
                ui.space()
                ui.button("Log out", on_click=lambda: ui.navigate.to(LOGOUT_PATH)).props(
                    "flat color=white"
                ).mark("logout")
                client = context.client
                # Logging out in one tab sends the browser's other tabs away too.
                forget = auth.when_logged_out(client.request.session, lambda: leave(client))
                client.on_delete(forget)
        with ui.row().classes("w-full items-start gap-6 flex-col md:flex-row md:flex-nowrap"):
            with ui.column().classes("grow min-w-0 w-full"):
                if not config.workflows:
                    ui.label("This compose file has no workflow.")
                elif len(config.workflows) == 1:
                    self.views.append(WorkflowView(service, config.workflows[0], api_url))
                else:
                    self._tabs(api_url)
            with ui.column().classes("w-full md:w-80 shrink-0"):
                self.models = ModelPanel(service)
        context.client.on_delete(self.stop)

    def _tabs(self, api_url: str) -> None:
        config = self.service.config
        with ui.tabs().classes("self-start") as tabs:
            for workflow in config.workflows:
                ui.tab(workflow.id, label=workflow.title or workflow.id).mark(f"tab-{workflow.id}")
        with ui.tab_panels(tabs, value=config.workflow(None).id).classes("w-full"):
            for workflow in config.workflows:
                with ui.tab_panel(workflow.id):
                    self.views.append(WorkflowView(self.service, workflow, api_url))

    def stop(self) -> None:
        for view in self.views:
            view.stop()


def leave(client: Client) -> None:
    with client:
        ui.navigate.to(LOGIN_PATH)


def build_root(service: Service, api_url: str, auth: WebUIAuth | None = None) -> Callable[[], None]:
    """The root page function for `service`: pass it to `ui.run_with(root=...)`
    (or to NiceGUI's `user_simulation` in tests). With `auth`, a session that
    has not logged in gets the login page, whatever the path (the gate in
    front of the UI sends it there anyway: this holds even without it)."""

    def root() -> None:
        if auth is not None:
            session = context.client.request.session
            if not auth.is_logged_in(session):
                # Only the server's name: its workflows are for those who logged in.
                LoginPage(auth, session, service.config.controller.name or "model-compose")
                return
        WorkflowPage(service, api_url, auth)

    return root
