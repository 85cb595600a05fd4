"""A real redis-server on a free loopback port (Debian's package, installed by
`scripts/setup --with-redis`), and real processes: queue workers and front
controllers (`model-compose up`) on the embedded model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.benchmark.redis_server import MISSING, RedisServer
from scripts.benchmark.redis_server import available as redis_available
from tests.server.conftest import free_port, live_server, wait_for  # noqa: F401 (a fixture)

REQUIRE_REDIS = "MODEL_COMPOSE_REQUIRE_REDIS"
ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.queue


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not redis_available():
        if os.environ.get(REQUIRE_REDIS):
            pytest.fail(f"{REQUIRE_REDIS} is set but {MISSING}")
        pytest.skip(MISSING)
    server = RedisServer().start()
    yield server
    server.close()


@dataclass
class Process:
    """A `model-compose up` child process and its combined output."""

    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_line(self, text: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.output():
            if self.popen.poll() is not None:
                raise AssertionError(f"exited ({self.popen.returncode}): {self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {text!r} in {seconds}s: {self.output()}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()

    def stop(self, seconds: float = 60) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=seconds)


@pytest.fixture
def compose_process(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """`compose_process(yaml_text, name)`: `model-compose up` on that file."""
    started: list[Process] = []

    def start(
        text: str, name: str, *, http: bool = False, env: dict[str, str] | None = None
    ) -> Process:
        folder = tmp_path / name
        folder.mkdir()
        path = folder / "model-compose.yml"
        path.write_text(textwrap.dedent(text))
        log = folder / "output.log"
        command = [sys.executable, "-m", "runtime.cli", "up", "-f", str(path)]
        url = None
        if http:
            port = free_port()
            command += ["--port", str(port)]
            url = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            )
        process = Process(popen, log, url)
        started.append(process)
        if http:
            wait_for(f"{url}/api/health", popen, log)
        else:
            process.wait_for_line("ready: queue worker")
        return process

    yield start
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


def worker_file(
    port: int, *, name: str = "test-queue", streaming: bool = False, extra: str = "", **adapter: Any
) -> str:
    """A worker serving workflow `chat` on the embedded model."""
    settings = "".join(f"\n    {key}: {value}" for key, value in adapter.items())
    output = "${output as stream/text}" if streaming else "${output}"
    return f"""\
controller:
  adapter:
    type: queue-subscriber
    driver: redis
    host: 127.0.0.1
    port: {port}
    name: {name}
    workflows: [chat]{settings}
{extra}
workflow:
  id: chat
  title: Chat
  job:
    component: chat
    input:
      prompt: ${{input.prompt}}
    output: {output}

component:
  id: chat
  type: model
  task: chat-completion
  model: HuggingFaceTB/SmolLM2-135M-Instruct
  action:
    messages:
      - role: user
        content: ${{input.prompt}}
    max_output_length: ${{input.max_tokens as integer | 32}}
    params:
      temperature: 0
"""


def front_file(port: int, *, name: str = "test-queue", extra: str = "", **queue: Any) -> str:
    """A front with no model: every run of `chat` goes through the queue."""
    settings = "".join(f"\n    {key}: {value}" for key, value in queue.items())
    return f"""\
controller:
  adapter:
    type: http-server
    base_path: /api
  queue:
    driver: redis
    host: 127.0.0.1
    port: {port}
    name: {name}{settings}
{extra}
workflow:
  id: local
  job:
    component: local
component:
  id: local
  type: model
  task: chat-completion
  model: HuggingFaceTB/SmolLM2-135M-Instruct
  preload: false
  action:
    messages:
      - role: user
        content: ${{input.prompt}}
"""
