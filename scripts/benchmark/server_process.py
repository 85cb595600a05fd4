"""A server in a subprocess on a free loopback port: `model-compose up`, as
the benchmark and the reliability scripts (load, soak) drive it exactly as a
user runs it, or any other server's command line (llama.cpp's llama-server,
for `scripts/bench --llama-server`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from scripts.benchmark.stats import memory

# (port, a temporary folder of the server's own) -> the command line to run.
Command = Callable[[int, Path], list[str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def model_compose_up(compose: Callable[[int], str]) -> Command:
    """`model-compose up` on the compose file `compose(port)` writes."""

    def command(port: int, folder: Path) -> list[str]:
        path = folder / "model-compose.yml"
        path.write_text(compose(port))
        return [sys.executable, "-m", "runtime.cli", "up", "-f", str(path)]

    return command


class ServerProcess:
    """The server `command(port, folder)` starts, with a temporary folder of
    its own; ready (its health path answers 200) once constructed. `name` is
    what error messages call it."""

    def __init__(
        self,
        command: Command,
        startup_timeout: float = 300.0,
        health_path: str = "/health",
        name: str = "model-compose up",
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.exit_code: int | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="model-compose-server-")
        self.command = command(self.port, Path(self._folder.name))
        self._log_path = Path(self._folder.name) / "server.log"
        self._log = open(self._log_path, "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        self._wait_ready(startup_timeout, health_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def is_alive(self) -> bool:
        return self.process.poll() is None

    def _wait_ready(self, timeout: float, health_path: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}{health_path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready after {timeout:.0f}s:\n{self.log()}")

    def log(self, tail: int = 4000) -> str:
        """The server's output so far (its last `tail` characters)."""
        text = self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
        return text[-tail:] if tail else text

    def memory(self) -> dict[str, int]:
        return memory(self.pid)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code (negative: the
        signal that ended it). The log stays readable until `cleanup()`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.exit_code = self.process.returncode
        self._log.close()
        return self.exit_code

    def cleanup(self) -> None:
        """Stop (if running) and delete the temporary folder."""
        self.stop()
        self._folder.cleanup()
