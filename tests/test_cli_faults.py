"""Faults that only a real `model-compose` process shows: a model file that
is cut short or not GGUF at all, a compose file with one broken model among
working ones, and SIGTERM while streams are in flight on both APIs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.server.conftest import free_port, wait_for

COMMAND = str(Path(sys.executable).parent / "model-compose")
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def write(folder: Path, text: str) -> Path:
    path = folder / "model-compose.yml"
    path.write_text(textwrap.dedent(text))
    return path


def broken_models(folder: Path, embedded_model_path: Path) -> dict[str, tuple[Path, str]]:
    """Bad model files, each with the reason `model-compose` must give."""
    truncated = folder / "truncated.gguf"
    with embedded_model_path.open("rb") as source:
        truncated.write_bytes(source.read(1_000_000))  # a download cut short
    text = folder / "notes.gguf"
    text.write_text("not a model, just text in a file named .gguf\n")
    return {
        "truncated": (truncated, f"model file is truncated (incomplete download?): {truncated}"),
        "not-gguf": (
            text,
            f"not a GGUF model file (it does not start with the GGUF magic bytes): {text}",
        ),
    }


def text_component(component_id: str, model: str, port: int) -> str:
    return f"""
    controller:
      base_path: /api
      port: {port}
      shutdown_timeout: 2s
    components:
      - id: {component_id}
        type: model
        task: text-generation
        model: {model}
        text: ${{input.prompt as text}}
        max_output_length: 8
    """


# -- 4. A model file that is truncated, or not GGUF ------------------------------


@pytest.mark.parametrize("command", ["up", "run"])
@pytest.mark.parametrize("kind", ["truncated", "not-gguf"])
def test_a_bad_model_file_is_one_line_naming_it_and_exit_code_2(
    tmp_path: Path, embedded_model_path: Path, kind: str, command: str
) -> None:
    path, reason = broken_models(tmp_path, embedded_model_path)[kind]
    write(tmp_path, text_component("writer", f"./{path.name}", free_port()))
    args = ["up"] if command == "up" else ["run", "--input", '{"prompt": "Hello"}']
    result = run(*args, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"error: {reason}"


# -- 5. One model fails to load while another works --------------------------------


def start_up(cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COMMAND, "up"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stop(server: subprocess.Popen[str]) -> str:
    """SIGTERM; the server's stderr, once it has exited 0."""
    server.send_signal(signal.SIGTERM)
    _, stderr = server.communicate(timeout=120)
    assert server.returncode == 0, stderr
    return stderr


def test_up_serves_the_workflows_whose_model_loads_and_names_the_broken_one(
    tmp_path: Path, embedded_model_path: Path
) -> None:
    path, reason = broken_models(tmp_path, embedded_model_path)["truncated"]
    port = free_port()
    write(
        tmp_path,
        f"""
        controller:
          base_path: /api
          port: {port}
        workflows:
          - id: good
            job: {{component: good}}
          - id: broken
            job: {{component: broken}}
        components:
          - id: good
            type: model
            task: text-generation
            model: {MODEL}
            text: ${{input.prompt as text}}
            max_output_length: 4
          - id: broken
            type: model
            task: text-generation
            model: ./{path.name}
            text: ${{input.prompt as text}}
        """,
    )
    server = start_up(tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/api/health", server)
        health = httpx.get(f"{url}/api/health").json()
        good = httpx.post(
            f"{url}/api/workflows/good/runs", json={"input": {"prompt": "Hi"}}, timeout=60
        )
        broken = httpx.post(
            f"{url}/api/workflows/broken/runs", json={"input": {"prompt": "Hi"}}, timeout=60
        )
    finally:
        stderr = stop(server)
    assert health == {
        "status": "degraded",
        "error": {
            "type": "model_error",
            "message": f"component 'broken' is unavailable: {reason}",
        },
    }
    assert good.json()["status"] == "completed"
    assert broken.status_code == 503
    assert broken.json()["error"] == {"type": "model_error", "message": reason}
    lines = stderr.splitlines()
    assert lines[2] == (
        f"warning: component 'broken' is unavailable: {reason} (its requests answer 503 "
        "until the server restarts; the others serve)"
    )
    assert lines[3].startswith("ready: ")
    assert "Traceback" not in stderr


def test_up_refuses_to_start_when_no_model_loads(tmp_path: Path, embedded_model_path: Path) -> None:
    models = broken_models(tmp_path, embedded_model_path)
    (truncated, cut), (text, not_gguf) = models["truncated"], models["not-gguf"]
    write(
        tmp_path,
        f"""
        controller: {{port: {free_port()}}}
        workflows:
          - {{id: a, job: {{component: a}}}}
          - {{id: b, job: {{component: b}}}}
        components:
          - {{id: a, type: model, task: text-generation, model: ./{truncated.name}, text: x}}
          - {{id: b, type: model, task: text-generation, model: ./{text.name}, text: x}}
        """,
    )
    result = run("up", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-2:] == [
        f"error: component 'a' is unavailable: {cut}",
        f"error: component 'b' is unavailable: {not_gguf}",
    ]


# -- 6. SIGTERM while streams are in flight on both APIs ----------------------------


class Client(threading.Thread):
    """One request in a thread; `lines` gets the response's `data:` lines as
    they come (`started` is set at the first), `outcome` how it ended."""

    def __init__(self, request: Callable[[Client], Any]) -> None:
        super().__init__(daemon=True)
        self.request = request
        self.lines: list[str] = []
        self.started = threading.Event()
        self.outcome: Any = None

    def run(self) -> None:
        try:
            self.outcome = self.request(self)
        except Exception as error:  # the test asserts on how it ended
            self.outcome = error
        self.started.set()

    def read(self, response: httpx.Response) -> httpx.Response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                self.lines.append(line.removeprefix("data: "))
                self.started.set()
        return response


LONG = 900  # tokens: far more than the shutdown timeout lets a request generate
# A prompt the model goes on from for longer than that (a short greeting may
# end with EOS before the timeout on a fast machine).
STORY = "Once upon a time"


def api_stream(url: str) -> Callable[[Client], Any]:
    body = {"input": {"prompt": STORY, "max_tokens": LONG}}
    headers = {"accept": "text/event-stream"}

    def request(client: Client) -> httpx.Response:
        with httpx.stream(
            "POST", f"{url}/api/workflows/runs", json=body, headers=headers, timeout=120
        ) as response:
            return client.read(response)

    return request


def v1_stream(url: str) -> Callable[[Client], Any]:
    body = {
        "model": "writer",
        # Greedy, the model counts on past LONG tokens; "Tell me a long story."
        # ended with EOS after 84, before the shutdown timeout on an idle machine.
        "messages": [
            {"role": "user", "content": "Print the numbers from 1 to 10000 without stopping."}
        ],
        "max_tokens": LONG,
        "temperature": 0,
        "stream": True,
    }

    def request(client: Client) -> httpx.Response:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as response:
            return client.read(response)

    return request


def openai_stream(url: str) -> Callable[[Client], Any]:
    def request(client: Client) -> list[str]:
        api = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        stream = api.completions.create(
            model="writer", prompt="Once upon a time", max_tokens=LONG, stream=True
        )
        for chunk in stream:
            client.lines.append(chunk.choices[0].text)
            client.started.set()
        return client.lines

    return request


def waiting(url: str, path: str, body: dict[str, Any]) -> Callable[[Client], Any]:
    def request(client: Client) -> httpx.Response:
        client.started.set()
        return httpx.post(f"{url}{path}", json=body, timeout=120)

    return request


def test_sigterm_ends_every_stream_in_flight_with_a_final_event_and_exits_0(
    tmp_path: Path,
) -> None:
    port = free_port()
    write(
        tmp_path,
        f"""
        controller:
          base_path: /api
          port: {port}
          shutdown_timeout: 2s
        component:
          id: writer
          type: model
          task: text-generation
          model: {MODEL}
          parallel: 8
          context_length: 1024
          streaming: true
          text: ${{input.prompt as text}}
          max_output_length: ${{input.max_tokens as number | 8}}
          params:
            do_sample: false  # greedy: every request runs past the shutdown timeout
        """,
    )
    server = start_up(tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/api/health", server)
        clients = {
            "api-stream": Client(api_stream(url)),
            "api-stream-2": Client(api_stream(url)),
            "api-waiting": Client(
                waiting(
                    url, "/api/workflows/runs", {"input": {"prompt": STORY, "max_tokens": LONG}}
                )
            ),
            "v1-stream": Client(v1_stream(url)),
            "openai-stream": Client(openai_stream(url)),
            "v1-waiting": Client(
                waiting(
                    url, "/v1/completions", {"model": "writer", "prompt": STORY, "max_tokens": LONG}
                )
            ),
        }
        for client in clients.values():
            client.start()
        for name, client in clients.items():
            assert client.started.wait(120), f"{name} never started"
    finally:
        stderr = stop(server)
    for client in clients.values():
        client.join(60)
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    for name in ("api-stream", "api-stream-2"):
        last = json.loads(clients[name].lines[-1])
        assert (last["type"], last["status"], last["finish_reason"]) == (
            "done",
            "cancelled",
            "cancelled",
        ), name
    api_waiting = clients["api-waiting"].outcome
    assert api_waiting.status_code == 200
    assert api_waiting.json()["status"] == "cancelled"
    *_, error, done = clients["v1-stream"].lines
    assert done == "[DONE]"
    assert json.loads(error) == {
        "error": {
            "message": "the generation was cancelled: the server is shutting down",
            "type": "server_error",
            "param": None,
            "code": "unavailable",
        }
    }
    assert isinstance(clients["openai-stream"].outcome, openai.APIError)
    assert "the server is shutting down" in str(clients["openai-stream"].outcome)
    v1_waiting = clients["v1-waiting"].outcome
    assert v1_waiting.status_code == 503
    assert v1_waiting.json()["error"]["message"] == (
        "the generation was cancelled: the server is shutting down"
    )
