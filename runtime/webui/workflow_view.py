"""One workflow on the page: title, description, its form and output, and,
for a chat-completion workflow, a chat view beside the form."""

from __future__ import annotations

from nicegui import ui

from runtime.config.schema import WorkflowConfig
from runtime.service import Service
from runtime.webui.chat_target import chat_target
from runtime.webui.chat_view import ChatView
from runtime.webui.run_panel import RunPanel


class WorkflowView:
    """Marked `workflow-<id>`; a chat workflow has tabs `Form` and `Chat`."""

    def __init__(self, service: Service, workflow: WorkflowConfig, api_url: str) -> None:
        self.chat: ChatView | None = None
        target = chat_target(service.config, workflow)
        with ui.column().classes("w-full gap-2").mark(f"workflow-{workflow.id}") as self.root:
            ui.label(workflow.title or workflow.id).classes("text-h6")
            if workflow.description:
                ui.markdown(workflow.description).classes("text-grey-8")
            if target is None:
                self.form = RunPanel(service, workflow, api_url)
                return
            with ui.tabs().classes("self-start") as tabs:
                form_tab = ui.tab("Form").mark("form-tab")
                chat_tab = ui.tab("Chat").mark("chat-tab")
            with ui.tab_panels(tabs, value=form_tab).classes("w-full"):
                with ui.tab_panel(form_tab):
                    self.form = RunPanel(service, workflow, api_url)
                with ui.tab_panel(chat_tab):
                    self.chat = ChatView(service, target, lambda: self.form.form.read().values)

    def stop(self) -> None:
        """The page is gone: stop what it still runs."""
        self.form.stop()
        if self.chat is not None:
            self.chat.stop()
