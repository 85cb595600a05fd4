"""The Web UI's login in a real browser, against a real `model-compose up` of
examples/quickstart with `api_key: ${env.MODEL_COMPOSE_API_KEY}`: the login
form, a link with the token, and the content security policy holding without
breaking the page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runtime.webui.login import WRONG_KEY
from tests.webui.e2e.conftest import Server, button, field, quickstart_up, shows, wait_until
from tests.webui.e2e.test_workflow_form import STATS, TITLE, fill_in

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

KEY = "e2e-key-6f1c2b9a"
LOGIN_TEXT = "This Web UI needs the server's API key"
# Collects the page's content-security-policy violations from its first script on.
WATCH_CSP = (
    "window.cspViolations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@pytest.fixture(scope="module")
def keyed_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with quickstart_up(
        tmp_path_factory.mktemp("quickstart-keyed"),
        ready_page="/login",
        api_key_line="api_key: ${env.MODEL_COMPOSE_API_KEY}",
        env={**os.environ, "MODEL_COMPOSE_API_KEY": KEY},
    ) as running:
        yield running
    assert KEY not in running.output()


def watch_csp(browser: WebDriver) -> None:
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_CSP})


def test_a_person_logs_in_with_the_key_and_runs_the_workflow(
    keyed_server: Server, browser: WebDriver
) -> None:
    watch_csp(browser)
    browser.get(f"{keyed_server.ui_url}/")
    wait_until(lambda: shows(browser, LOGIN_TEXT), what="the login page")
    assert browser.current_url == f"{keyed_server.ui_url}/login"
    assert not shows(browser, TITLE)

    field(browser, "API key").send_keys("not-the-key")
    button(browser, "Log in").click()
    wait_until(lambda: shows(browser, WRONG_KEY), what="the wrong-key message")
    assert not shows(browser, "not-the-key")

    field(browser, "API key").send_keys(KEY + "\n")
    wait_until(lambda: shows(browser, TITLE), what="the workflow page")
    assert browser.current_url == f"{keyed_server.ui_url}/"

    fill_in(browser, "You are a helpful AI assistant.", "Say hello.")
    button(browser, "Run Workflow").click()
    wait_until(lambda: STATS.search(browser.execute_script("return document.body.innerText")))
    assert KEY not in browser.page_source
    assert browser.execute_script("return window.cspViolations") == []
    # An image on another site, as a model's markdown answer could name one, is not fetched.
    browser.execute_script(
        "const image = new Image(); image.src = 'http://elsewhere.invalid/x.png';"
        " document.body.appendChild(image);"
    )
    violations = wait_until(lambda: browser.execute_script("return window.cspViolations"))
    assert violations == ["img-src http://elsewhere.invalid/x.png"]


def test_a_link_with_the_token_logs_in_and_leaves_the_address_bar(
    keyed_server: Server, browser: WebDriver
) -> None:
    browser.get(f"{keyed_server.ui_url}/?token={KEY}")
    wait_until(lambda: shows(browser, TITLE), what="the workflow page")
    assert browser.current_url == f"{keyed_server.ui_url}/"
    browser.back()  # the redirect replaced the address with the token in the history
    assert KEY not in browser.current_url


def test_log_out_returns_to_the_login_page_and_ends_the_login(
    keyed_server: Server, browser: WebDriver
) -> None:
    browser.get(f"{keyed_server.ui_url}/?token={KEY}")
    wait_until(lambda: shows(browser, TITLE), what="the workflow page")
    button(browser, "Log out").click()
    wait_until(lambda: shows(browser, LOGIN_TEXT), what="the login page")
    assert browser.current_url == f"{keyed_server.ui_url}/login"
    browser.get(f"{keyed_server.ui_url}/")
    wait_until(lambda: shows(browser, LOGIN_TEXT), what="the login page again")
    assert not shows(browser, TITLE)
