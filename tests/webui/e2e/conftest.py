"""A real `model-compose up` of examples/quickstart (or of a test's own
compose file) on free ports, and headless Chromium (Debian's chromium and
chromium-driver, installed by `scripts/setup --with-browser`) driven through
selenium, for tests that use the Web UI the way a person does: by what the
page shows."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.server.conftest import EXAMPLES, free_port, wait_for

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
COMMAND = Path(sys.executable).parent / "model-compose"
# The closed network: without these, Chromium keeps trying (and failing) to
# reach Google's services. --no-sandbox because the tests may run as root.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)
# Set in .ci/run: CI must run these tests, not skip them.
REQUIRE_BROWSER = "MODEL_COMPOSE_REQUIRE_BROWSER"
# Set to write docs/webui.png, the README's screenshot, from the run test.
UPDATE_SCREENSHOTS = "UPDATE_SCREENSHOTS"
README_SCREENSHOT = Path(__file__).parents[3] / "docs" / "webui.png"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    api_url: str
    ui_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The browser; skips the test (fails it where CI asks for the browser)
    when it is not installed."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        reason = f"{' and '.join(missing)} not installed (scripts/setup --with-browser installs it)"
        if os.environ.get(REQUIRE_BROWSER):
            pytest.fail(f"{REQUIRE_BROWSER} is set but {reason}")
        pytest.skip(reason)
    return CHROMIUM


@contextmanager
def quickstart_up(
    folder: Path, ready_page: str = "/", api_key_line: str = "", env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`model-compose up` of a copy of examples/quickstart in `folder` (see
    `compose_up`), plus `api_key_line` under `controller:`."""
    text = (EXAMPLES / "quickstart" / "model-compose.yml").read_text()
    if api_key_line:
        text = text.replace("controller:\n", f"controller:\n  {api_key_line}\n", 1)
    with compose_up(folder, text, ready_page, env) as running:
        yield running


@contextmanager
def compose_up(
    folder: Path, text: str, ready_page: str = "/", env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`model-compose up` of the compose file `text` written to `folder`, its
    API's `port: 8080` and its Web UI's `port: 8081` moved to free ports;
    ready when the API's health and the UI's `ready_page` answer; stopped
    with SIGTERM, exiting 0."""
    api_port, ui_port = free_port(), free_port()
    assert "port: 8080" in text and "port: 8081" in text
    text = text.replace("port: 8080", f"port: {api_port}").replace("port: 8081", f"port: {ui_port}")
    (folder / "model-compose.yml").write_text(text)
    log = folder / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(COMMAND), "up"], cwd=folder, stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    running = Server(process, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}", log)
    try:
        wait_for(f"{running.api_url}/health", process, log)
        wait_for(f"{running.ui_url}{ready_page}", process, log)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, running.output()


@pytest.fixture(scope="session")
def server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """examples/quickstart served by a real `model-compose up` (see `quickstart_up`)."""
    with quickstart_up(tmp_path_factory.mktemp("quickstart")) as running:
        yield running


@pytest.fixture
def browser(chromium: Path, tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, through chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(
        service=DriverService(executable_path=str(CHROMEDRIVER)), options=options
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser: WebDriver, tmp_path: Path) -> Callable[[str], Path]:
    """Save what the browser shows as <tmp_path>/<name>.png."""

    def save(name: str) -> Path:
        path = tmp_path / f"{name}.png"
        assert browser.save_screenshot(str(path)), path
        return path

    return save


def update_readme_screenshot(path: Path) -> None:
    """Copy a screenshot to docs/webui.png, only when UPDATE_SCREENSHOTS=1 (so
    test runs, CI's among them, leave the work tree alone)."""
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOT)


# --- finding things the way a person does: by the text they show -----------


def xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat('" + "', \"'\", '".join(text.split("'")) + "')"


def wait_until(
    condition: Callable[[], Any], timeout: float = 30, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll `condition` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what or condition}")
        time.sleep(interval)


def visible(elements: list[WebElement]) -> WebElement | None:
    """The first of `elements` on screen. One the page removed since it was
    found (NiceGUI re-renders while we poll) is not on screen."""
    from selenium.common.exceptions import StaleElementReferenceException

    for each in elements:
        try:
            if each.is_displayed():
                return each
        except StaleElementReferenceException:
            continue
    return None


def buttons(driver: WebDriver, text: str) -> list[WebElement]:
    """The buttons (and tabs) whose text is `text`, shown or not."""
    from selenium.webdriver.common.by import By

    literal = xpath_literal(text)
    xpath = (
        f"//*[self::button or @role='button' or @role='tab']"
        f"[normalize-space(.)={literal} or @aria-label={literal}]"
    )
    return driver.find_elements(By.XPATH, xpath)


def button(driver: WebDriver, text: str, timeout: float = 10) -> WebElement:
    """The visible button (or tab) whose text is `text`."""
    return wait_until(lambda: visible(buttons(driver, text)), timeout, what=f"button {text!r}")


def field(driver: WebDriver, label: str, timeout: float = 10) -> WebElement:
    """The visible text input or text area labelled `label` (the label may
    carry a required marker such as `*`), or showing it as its placeholder."""
    from selenium.webdriver.common.by import By

    literal = xpath_literal(label)
    editable = "*[self::input or self::textarea]"
    xpath = (
        f"//{editable}[starts-with(@aria-label, {literal}) or starts-with(@placeholder, {literal})]"
        f" | //label[starts-with(normalize-space(.), {literal})]//{editable}"
        f" | //label[starts-with(normalize-space(.), {literal})][@for]"
        f"/following::{editable}[1]"
    )
    return wait_until(
        lambda: visible(driver.find_elements(By.XPATH, xpath)), timeout, what=f"field {label!r}"
    )


# Icons are font ligatures: their names are text on the page (the answer's copy
# button shows as "content_copy", the Reasoning fold's arrow as "keyboard_arrow_down").
ICONS = frozenset({"content_copy", "keyboard_arrow_down"})


def page_text(driver: WebDriver) -> str:
    """What the page shows, as text (hidden parts left out; CSS may upper-case
    some, as on buttons and tabs)."""
    return driver.execute_script("return document.body.innerText")


# The model panel's live memory figures change on their own (RSS, KV used).
LIVE_MEMORY = re.compile(r"^(process memory: RSS |weights [\d.]+ [KMG]?B, KV )")


def _steady(text: str) -> list[str]:
    return [line for line in text.splitlines() if not LIVE_MEMORY.match(line)]


def inserted(before: str, now: str) -> str:
    """The lines that appeared on the page between `before` and `now`: what is
    new between the lines they start with and the lines they end with."""
    old, new = _steady(before), _steady(now)
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    return "\n".join(new[start : len(new) - end])


def shows(driver: WebDriver, text: str) -> bool:
    return text in page_text(driver)
