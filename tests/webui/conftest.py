"""The Web UI under NiceGUI's user simulation: a real Service (models loaded
when a test needs them) behind the page's root function, and a simulated
user who opens the page, types and clicks."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nicegui import ElementFilter, ui
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from runtime.config import load_config
from runtime.service import Service
from runtime.webui.page import build_root

EXAMPLES = Path(__file__).parents[2] / "examples"
API_URL = "http://127.0.0.1:8080/api"


@dataclass
class Page:
    user: User
    service: Service

    def elements(self, marker: str, within: str | None = None) -> list[Any]:
        """The elements marked `marker` (inside one marked `within`), shown or
        hidden, in page order."""
        assert self.user.client is not None
        with self.user.client:
            found = ElementFilter(marker=marker, local_scope=False, only_visible=False)
            if within is not None:
                found = found.within(marker=within)
            return sorted(found, key=lambda element: element.id)

    def element(self, marker: str, within: str | None = None) -> Any:
        """The one element marked `marker` (fails when there are several)."""
        elements = self.elements(marker, within)
        assert len(elements) == 1, f"{len(elements)} elements marked {marker!r}"
        return elements[0]

    def text(self, marker: str, within: str | None = None) -> str:
        return text_of(self.element(marker, within))

    def value(self, marker: str, within: str | None = None) -> Any:
        return self.element(marker, within).value

    async def until(self, condition: Callable[[], Any], timeout: float = 20) -> Any:
        """Wait for `condition()` to be truthy (the model streams in the
        background); an element it looks for may not be there yet."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                if result := condition():
                    return result
            except AssertionError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"waited {timeout}s for {condition}")
            await asyncio.sleep(0.05)


def text_of(element: Any) -> str:
    return element.content if isinstance(element, ui.markdown | ui.code) else element.text


OpenPage = Callable[..., AbstractAsyncContextManager[Page]]


@pytest.fixture
def open_page(tmp_path: Path, request: pytest.FixtureRequest) -> OpenPage:
    """`async with open_page(yaml_or_example, load=True) as page:` — the page
    of a compose file (YAML text, or an example's folder name) for a
    simulated user; `load` loads its models first (skipping the test when
    the embedded model is not installed)."""

    @asynccontextmanager
    async def open_(compose: str, load: bool = True, api_url: str = API_URL) -> AsyncIterator[Page]:
        if "\n" in compose:
            path = tmp_path / "model-compose.yml"
            path.write_text(textwrap.dedent(compose))
        else:
            path = EXAMPLES / compose
        if load:
            request.getfixturevalue("embedded_model_path")
        service = Service(load_config([path], env={}).config)
        try:
            if load:
                await service.start()
            async with user_simulation(root=build_root(service, api_url)) as user:
                await user.open("/")
                yield Page(user, service)
        finally:
            await service.stop()

    return open_
