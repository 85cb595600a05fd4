"""The login page under NiceGUI's user simulation: with an API key, the page
asks for it before it shows any workflow, and the key never shows on a page."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from nicegui.testing.user_simulation import user_simulation

from runtime.config import load_config
from runtime.service import Service
from runtime.webui.auth import WebUIAuth
from runtime.webui.login import NO_KEY, WRONG_KEY, too_many
from runtime.webui.page import build_root
from tests.webui.composes import CHAT
from tests.webui.conftest import API_URL, Page

KEY = "secret-key-123"  # CHAT's controller.api_key
OpenLogin = Callable[..., AbstractAsyncContextManager[Page]]


@pytest.fixture
def open_login(tmp_path: Path) -> OpenLogin:
    """`async with open_login() as page:` — CHAT's page behind the login, as
    mount_webui builds it (models not loaded: these tests run nothing)."""

    @asynccontextmanager
    async def open_(auth: WebUIAuth | None = None) -> AsyncIterator[Page]:
        path = tmp_path / "model-compose.yml"
        path.write_text(textwrap.dedent(CHAT))
        service = Service(load_config([path], env={}).config)
        assert service.config.controller.api_key == KEY
        auth = auth or WebUIAuth(KEY)
        async with user_simulation(root=build_root(service, API_URL, auth)) as user:
            await user.open("/")
            yield Page(user, service)

    return open_


def everything_shown(page: Page) -> str:
    """Every text and property of every element on the page, as one string."""
    assert page.user.client is not None
    parts: list[Any] = []
    for element in page.user.client.layout.descendants():
        parts += [getattr(element, "text", ""), getattr(element, "content", ""), element.props]
        parts.append(getattr(element, "value", ""))
    return repr(parts)


async def test_without_the_key_the_page_shows_the_login_and_no_workflow(
    open_login: OpenLogin,
) -> None:
    async with open_login() as page:
        await page.user.should_see("This Web UI needs the server's API key")
        await page.user.should_not_see("Greedy chat")
        assert not page.elements("run") and not page.elements("input-user_prompt")
        assert page.element("login-key").props["type"] == "password"


async def test_a_wrong_key_says_so_and_is_not_kept_on_the_page(open_login: OpenLogin) -> None:
    async with open_login() as page:
        page.user.find(marker="login").click()
        assert page.text("login-message") == NO_KEY
        page.user.find(marker="login-key").type("not-the-key-987")
        page.user.find(marker="login").click()
        assert page.text("login-message") == WRONG_KEY
        assert page.value("login-key") == ""
        assert "not-the-key-987" not in everything_shown(page)
        await page.user.should_not_see("Greedy chat")


async def test_the_right_key_opens_the_workflows_and_the_key_shows_nowhere(
    open_login: OpenLogin,
) -> None:
    async with open_login() as page:
        page.user.find(marker="login-key").type(KEY).trigger("keydown.enter")
        await page.user.should_see("Greedy chat")  # the page it navigated to
        assert page.elements("run") and not page.elements("login-key")
        # The API panel's curl command reads the key from the environment.
        assert "$MODEL_COMPOSE_API_KEY" in everything_shown(page)
        assert KEY not in everything_shown(page)
        # The session stays logged in: opening the page again skips the login.
        await page.user.open("/")
        await page.user.should_see("Greedy chat")


async def test_the_logged_in_page_has_a_log_out_button(open_login: OpenLogin) -> None:
    async with open_login() as page:
        assert not page.elements("logout")  # nothing to log out of yet
        page.user.find(marker="login-key").type(KEY).trigger("keydown.enter")
        await page.user.should_see("Greedy chat")
        assert page.text("logout") == "Log out"


async def test_after_five_wrong_keys_the_form_says_to_wait_even_for_the_right_one(
    open_login: OpenLogin,
) -> None:
    auth = WebUIAuth(KEY)
    now = [1000.0]
    auth.failures.clock = lambda: now[0]
    async with open_login(auth) as page:
        for _ in range(5):
            page.user.find(marker="login-key").type("a-wrong-guess")
            page.user.find(marker="login").click()
            assert page.text("login-message") == WRONG_KEY
        page.user.find(marker="login-key").type(KEY)
        page.user.find(marker="login").click()
        assert page.text("login-message") == too_many(60)
        assert page.text("login-message") == (
            "Too many wrong API keys from this address: try again in 60 s."
        )
        await page.user.should_not_see("Greedy chat")
        now[0] += 60
        page.user.find(marker="login-key").type(KEY).trigger("keydown.enter")
        await page.user.should_see("Greedy chat")
