"""`model-compose up` / `down` as a user runs them: subprocesses, signals,
a real port on loopback."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from runtime.engine.pooled_model import IDLE_LOGGER
from runtime.server.serve import idle_lines
from tests.server.conftest import EXAMPLES, free_port, wait_for

COMMAND = str(Path(sys.executable).parent / "model-compose")
SEED_CHAT_BODY = {
    "input": {
        "system-prompt": "You are a helpful AI assistant.",
        "user-prompt": "Explain quantum computing in simple terms.",
    }
}


def quickstart_copy(tmp_path: Path, port: int, extra: str = "") -> Path:
    """examples/quickstart on another port, in a folder of its own (the pid file
    and log go next to the compose file)."""
    text = (EXAMPLES / "quickstart" / "model-compose.yml").read_text()
    text = text.replace("port: 8080", f"port: {port}")
    text = text.replace("port: 8081", f"port: {free_port()}") + extra
    path = tmp_path / "model-compose.yml"
    path.write_text(text)
    return path


def ui_port(folder: Path) -> int:
    text = (folder / "model-compose.yml").read_text()
    return int(text.split("webui:")[1].split("port:")[1].split()[0])


def start_up(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COMMAND, "up", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_up_serves_until_a_signal_then_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    quickstart_copy(tmp_path, port)
    server = start_up(cwd=tmp_path)
    try:
        wait_for(f"http://127.0.0.1:{port}/api/health", server)
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/workflows/runs", json=SEED_CHAT_BODY, timeout=120
        )
        assert response.json()["output"]["generated"]
    finally:
        server.send_signal(sig)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert stderr.splitlines() == [
        "loading model SmolLM2-135M-Instruct.Q4_1.gguf for '__component__'…",
        f"ready: model-compose API at http://127.0.0.1:{port}/api, OpenAI-compatible API at"
        f" http://127.0.0.1:{port}/v1, Web UI at http://127.0.0.1:{ui_port(tmp_path)}"
        " (Ctrl-C to stop)",
    ]


def test_a_request_in_flight_finishes_when_the_server_is_told_to_stop(tmp_path: Path) -> None:
    port = free_port()
    quickstart_copy(tmp_path, port)
    server = start_up(cwd=tmp_path)
    wait_for(f"http://127.0.0.1:{port}/api/health", server)
    results: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: results.append(
            httpx.post(
                f"http://127.0.0.1:{port}/api/workflows/runs", json=SEED_CHAT_BODY, timeout=120
            )
        )
    )
    request.start()
    time.sleep(0.5)  # the generation is under way
    server.send_signal(signal.SIGTERM)
    request.join(timeout=120)
    server.communicate(timeout=60)
    assert server.returncode == 0
    assert results and results[0].status_code == 200
    assert results[0].json()["status"] == "completed"


def test_up_d_runs_in_the_background_until_down(tmp_path: Path) -> None:
    port = free_port()
    quickstart_copy(tmp_path, port)
    started = subprocess.run(
        [COMMAND, "up", "-d"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    pid = int((tmp_path / "model-compose.pid").read_text())
    assert started.stdout == (
        f"model-compose is running in the background (pid {pid}): API at "
        f"http://127.0.0.1:{port}/api, OpenAI-compatible API at http://127.0.0.1:{port}/v1;"
        f" log: {tmp_path / 'model-compose.log'}; stop it with `model-compose down`\n"
    )
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/workflows/runs", json=SEED_CHAT_BODY, timeout=120
    )
    assert response.json()["status"] == "completed"
    again = subprocess.run(
        [COMMAND, "up", "-d"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert (again.returncode, again.stderr) == (
        2,
        (
            f"error: a server for {tmp_path / 'model-compose.yml'} is already running (pid {pid});"
            " stop it with `model-compose down`\n"
        ),
    )
    stopped = subprocess.run(
        [COMMAND, "down"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert (stopped.returncode, stopped.stdout) == (0, f"stopped model-compose (pid {pid})\n")
    assert not (tmp_path / "model-compose.pid").exists()
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # reaped by init shortly after it exits
            os.kill(pid, 0)
            time.sleep(0.1)


def test_down_without_a_server_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    quickstart_copy(tmp_path, free_port())
    result = subprocess.run(
        [COMMAND, "down"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: no server was started with `model-compose up -d` for "
        f"{tmp_path / 'model-compose.yml'}\n"
    )


def test_up_refuses_to_start_when_the_model_cannot_load(tmp_path: Path) -> None:
    path = quickstart_copy(tmp_path, free_port())
    path.write_text(
        path.read_text().replace(
            "model: HuggingFaceTB/SmolLM2-135M-Instruct", "model: ./missing.gguf"
        )
    )
    result = subprocess.run(
        [COMMAND, "up"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: model file not found: {tmp_path / 'missing.gguf'}"
    )


def test_up_on_a_busy_port_is_one_clear_error(tmp_path: Path) -> None:
    port = free_port()
    quickstart_copy(tmp_path, port)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = subprocess.run(
            [COMMAND, "up"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
    assert (result.returncode, result.stderr) == (
        1,
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n",
    )


def test_a_public_address_without_an_api_key_prints_a_loud_warning(tmp_path: Path) -> None:
    port = free_port()
    quickstart_copy(tmp_path, port)
    server = start_up("--host", "0.0.0.0", cwd=tmp_path)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", server)
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert stderr.startswith(
        "WARNING: serving on 0.0.0.0, reachable from other machines, with no API key"
    )


def test_up_prints_the_lines_of_models_unloaded_after_idle_and_loaded_again() -> None:
    said: list[str] = []
    with idle_lines(said.append):
        logging.getLogger(IDLE_LOGGER).info("unloading model %s after %s idle", "m.gguf", "5m")
    logging.getLogger(IDLE_LOGGER).info("once `up` has returned, nothing is printed")
    assert said == ["unloading model m.gguf after 5m idle"]
