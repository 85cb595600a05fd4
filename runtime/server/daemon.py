"""`up -d` and `down`: a server in the background, found by a pid file next
to the compose file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from runtime.errors import RuntimeFailure, UserError

PID_FILE = "model-compose.pid"
LOG_FILE = "model-compose.log"
# What `up` prints once it serves (runtime.server.serve, runtime.queue.process).
READY = b"ready: "


def pid_file(compose_file: Path) -> Path:
    return compose_file.parent / PID_FILE


def running_pid(path: Path) -> int | None:
    """The pid in `path` when that process is still our server, else None."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    proc = Path(f"/proc/{pid}")
    try:
        if b"runtime.cli" not in (proc / "cmdline").read_bytes():
            return None  # the pid was reused by another program
        if "\nState:\tZ" in (proc / "status").read_text():
            return None  # exited, not yet reaped by its new parent
    except OSError:
        pass  # no /proc (macOS): trust kill(pid, 0)
    return pid


def start_detached(
    compose_file: Path,
    argv: Sequence[str],
    health_url: str | None,
    timeout: float = 900.0,
) -> tuple[int, Path]:
    """Start `model-compose up` with `argv` in its own session; wait until
    /health says ok (without `health_url`, a queue worker's: until its output
    says it is ready). Returns (pid, log file)."""
    pids = pid_file(compose_file)
    if (pid := running_pid(pids)) is not None:
        raise UserError(
            f"a server for {compose_file} is already running (pid {pid}); "
            "stop it with `model-compose down`"
        )
    log = compose_file.parent / LOG_FILE
    # The log is appended to: only what this start writes counts.
    start = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "up", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pids.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            pids.unlink(missing_ok=True)
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeFailure(f"the server stopped while starting ({tail[0]}); see {log}")
        if health_url is None:
            with log.open("rb") as written:
                written.seek(start)
                if READY in written.read():
                    return process.pid, log
        else:
            try:
                if httpx.get(health_url, timeout=2).status_code == 200:
                    return process.pid, log
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise RuntimeFailure(f"the server did not become ready within {timeout:g}s; see {log}")


def stop(compose_file: Path, timeout: float) -> int:
    """SIGTERM the server for `compose_file`, wait for it to exit; its pid."""
    pids = pid_file(compose_file)
    if not pids.exists():
        raise UserError(f"no server was started with `model-compose up -d` for {compose_file}")
    pid = running_pid(pids)
    if pid is None:
        pids.unlink(missing_ok=True)
        raise UserError(
            f"the server for {compose_file} was not running (removed a stale {PID_FILE})"
        )
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(pids) is None:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    pids.unlink(missing_ok=True)
    return pid
