"""The page: one tab per workflow (none for one), one session per browser tab."""

from __future__ import annotations

import httpx
from nicegui import core, ui
from nicegui.testing.user import User

from tests.webui.composes import CHAT, TWO_WORKFLOWS
from tests.webui.conftest import OpenPage


async def test_several_workflows_get_one_tab_each_and_the_default_is_open(
    open_page: OpenPage,
) -> None:
    async with open_page(TWO_WORKFLOWS, load=False) as page:
        tabs = page.elements("tab-chat") + page.elements("tab-text")
        assert [tab.props["label"] for tab in tabs] == ["Chat", "Continue text"]
        assert tabs[0].tabs.value == "text"  # `default: true`
        # Each tab has its own form; only the chat workflow has a chat view.
        assert page.element("input-question", within="workflow-chat")
        assert page.element("input-prompt", within="workflow-text")
        assert page.elements("chat-tab", within="workflow-chat")
        assert not page.elements("chat-tab", within="workflow-text")
        assert len(page.elements("run")) == 2


async def test_one_workflow_gets_no_tabs(open_page: OpenPage) -> None:
    async with open_page("quickstart-text", load=False) as page:
        await page.user.should_see("Generate Text from Prompt")
        # No workflow tabs, and no Form/Chat tabs: text generation has no chat view.
        assert not [e for e in page.user.current_layout.descendants() if isinstance(e, ui.tab)]


async def test_each_browser_tab_sees_only_its_own_runs(open_page: OpenPage) -> None:
    async with open_page(CHAT) as page:
        other = User(
            httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://t")
        )
        await other.open("/")
        page.user.find(marker="input-user_prompt").type("Hello there!")
        page.user.find(marker="run").click()
        await page.until(lambda: page.text("stats"))
        assert page.text("output")
        with other:
            (output,) = [e for e in other.find(kind=ui.markdown).elements if "output" in e._markers]
        assert output.content == ""
        assert other.client is not page.user.client
