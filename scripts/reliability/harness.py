"""What the load and the soak share: a real `model-compose up` serving the
compose file, the machine description, and the checks that concern the
server process itself (it stayed up, stops cleanly, logged no traceback)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from scripts.benchmark.machine import LoadMeter, describe
from scripts.benchmark.server_process import ServerProcess, model_compose_up
from scripts.reliability import checks, report
from scripts.reliability.compose import BASE_PATH, ServerSettings, compose_file
from scripts.reliability.report import passed
from scripts.reliability.server_state import wait_until_idle

Say = Callable[[str], None]
# A run's body: drives the server, returns its findings with a "checks" list.
Drive = Callable[[ServerProcess], Awaitable[dict[str, Any]]]


def client_for(server: ServerProcess, connections: int) -> httpx.AsyncClient:
    """One HTTP client for every simulated user (a connection each); no
    timeout here: each request carries its own (clients.stream_request)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=server.url, timeout=None, limits=limits)


async def final_status(client: httpx.AsyncClient) -> dict[str, Any] | None:
    """The server's load once idle (or after 30 s); None if it does not answer."""
    try:
        return await wait_until_idle(client)
    except httpx.HTTPError:
        return None


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a process has used, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_with_server(
    title: str,
    settings: dict[str, Any],
    server_settings: ServerSettings,
    drive: Drive,
    timeout_s: float,
    say: Say,
) -> dict[str, Any]:
    from runtime.engine.spec import default_threads

    machine = describe(server_settings.model, server_settings.n_threads or default_threads())
    meter = LoadMeter()
    say(f"{title}: starting model-compose up …")
    server = ServerProcess(
        model_compose_up(lambda port: compose_file(server_settings, port)),
        health_path=f"{BASE_PATH}/health",
    )
    try:
        try:
            found = asyncio.run(asyncio.wait_for(drive(server), timeout_s))
        except TimeoutError:
            raise RuntimeError(
                f"{title} did not finish in {timeout_s:.0f}s (is another program using the "
                f"CPU?); the server's log ends:\n{server.log()}"
            ) from None
        alive = server.is_alive
        cpu_s = process_cpu_s(server.pid)
    finally:
        exit_code = server.stop()
        log = server.log(tail=0)
        server.cleanup()
    found_checks = [
        *found.pop("checks"),
        checks.server_alive(alive, exit_code),
        checks.clean_exit(exit_code),
        checks.clean_log(log),
    ]
    machine["other_load"] = meter.read()
    # On a busy machine the wall times stretch; the server's CPU time much less.
    machine["server_cpu_s"] = cpu_s
    return {
        "title": title,
        "settings": settings,
        "machine": machine,
        **found,
        "checks": [check.to_json() for check in found_checks],
        "passed": passed(found_checks),
    }


def run_script(
    name: str, run: Callable[[Any, Say], dict[str, Any]], settings: Any, out: Path, say: Say
) -> int:
    """A script's whole run: results as markdown on stdout and files in `out`;
    exit code 0 when every check passed, 1 when one failed, 2 when the run
    could not go on (the server did not start, or stopped answering)."""
    try:
        results = run(settings, say)
    except RuntimeError as error:
        say(f"scripts/{name}: {error}")
        return 2
    print(report.markdown(results))
    for path in report.write(results, out, name):
        say(f"wrote {path}")
    return 0 if results["passed"] else 1


class Phases:
    """How long each phase of a run took (references, warm-up, the run...)."""

    def __init__(self, say: Say) -> None:
        self.seconds: dict[str, float] = {}
        self._say = say

    @contextlib.contextmanager
    def phase(self, name: str, message: str) -> Iterator[None]:
        self._say(message)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - started
