"""The login page: what the Web UI shows instead of the workflows while the
browser's session has not proved it knows `controller.api_key`."""

from __future__ import annotations

from nicegui import context, ui

from runtime.server.middleware import client_address
from runtime.server.rate_limit import too_many_failures
from runtime.webui.auth import Session, TooManyFailures, WebUIAuth

WRONG_KEY = "That is not the API key."
NO_KEY = "Enter the API key."


class LoginPage:
    def __init__(self, auth: WebUIAuth, session: Session, title: str) -> None:
        self.auth = auth
        # Made while the page's response is still being built, so the
        # session cookie carries it back to the browser.
        self.session_id = auth.session_id(session)
        client = context.client
        # Wrong keys are counted per address, this page's and its links' alike.
        self.address = client_address(client.request.scope)
        auth.login_clients.add(client.id)
        client.on_delete(lambda: auth.login_clients.discard(client.id))
        ui.page_title(f"Log in · {title}")
        with ui.card().classes("absolute-center w-96 max-w-full"):
            ui.label(title).classes("text-h6")
            ui.label(
                "This Web UI needs the server's API key (controller.api_key in the compose file)."
            )
            self.key = (
                ui.input("API key", password=True, password_toggle_button=True)
                .props("autofocus autocomplete=current-password")
                .classes("w-full")
                .mark("login-key")
                .on("keydown.enter", self.submit)
            )
            self.message = (
                ui.label(auth.take_notice(session)).classes("text-negative").mark("login-message")
            )
            ui.button("Log in", on_click=self.submit).mark("login")
            ui.label("A link with ?token=<key> in its address logs in too.").classes(
                "text-caption text-grey-7"
            )

    def submit(self) -> None:
        # The field is cleared either way: the key does not stay on the page.
        candidate, self.key.value = str(self.key.value or ""), ""
        if not candidate:
            self.message.text = NO_KEY
            return
        try:
            accepted = self.auth.check(candidate, self.address)
        except TooManyFailures as waiting:
            self.message.text = too_many(waiting.seconds)
            return
        if accepted:
            self.auth.log_in(self.session_id)
            self.message.text = ""
            ui.navigate.to("/")
        else:
            self.message.text = WRONG_KEY


def too_many(seconds: int) -> str:
    """The rate limit's message, as a sentence on the page."""
    message = too_many_failures(seconds)
    return f"{message[0].upper()}{message[1:]}."
