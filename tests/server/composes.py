"""Compose files for the model-compose API tests: greedy text generation on
the embedded model, short by default, with a streaming workflow and one whose
context holds only 64 tokens."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

WRITER = """
controller:
  base_path: /api
{controller}
workflows:
  - id: write
    title: Continue a text
    description: Greedy continuation of a prompt.
    default: true
    job:
      component: writer
  - id: stream
    title: Streamed continuation
    job:
      component: streamer
{extra_workflows}
components:
  - id: writer
    type: model
    task: text-generation
    model: {model}
    text: ${{input.prompt as text}}
    max_output_length: ${{input.max_tokens as number | 8}}
    params:
      do_sample: false
      temperature: ${{input.temperature as number | 0}}
  - id: streamer
    type: model
    task: text-generation
    model: {model}
    text: ${{input.prompt as text}}
    max_output_length: ${{input.max_tokens as number | 8}}
    streaming: true
    params:
      do_sample: false
{extra_components}
"""

TINY_WORKFLOW = """
  - id: tiny
    title: A 64-token context
    job:
      component: tiny
"""

TINY_COMPONENT = f"""
  - id: tiny
    type: model
    task: text-generation
    model: {MODEL}
    context_length: 64
    streaming: true
    text: ${{input.prompt as text}}
    max_output_length: 8
    params:
      do_sample: false
"""

# A workflow component (`relay`) runs this file's `write` workflow: the
# front streams the writer's deltas (its output is `as stream`).
RELAY = f"""
controller:
  base_path: /api
workflows:
  - id: front
    default: true
    title: Write through a relay
    job:
      type: component
      component: relay
  - id: write
    job:
      component: writer
components:
  - id: relay
    type: workflow
    action:
      workflow: write
      input:
        prompt: ${{input.text as text}}
      output: ${{output as stream/text}}
  - id: writer
    type: model
    task: text-generation
    model: {MODEL}
    text: ${{input.prompt as text}}
    max_output_length: 8
    return_full_text: false
    params:
      do_sample: false
"""

# Far more than 64 tokens: a prompt the tiny context cannot hold.
LONG_PROMPT = "word " * 100


def writer_compose(tiny: bool = False, **controller: Any) -> str:
    """The writer compose file; `controller` adds settings such as
    `api_key="secret"` or `origins=[...]` (written as JSON, which is YAML)."""
    lines = "\n".join(f"  {key}: {json.dumps(value)}" for key, value in controller.items())
    return WRITER.format(
        controller=lines,
        model=MODEL,
        extra_workflows=TINY_WORKFLOW if tiny else "",
        extra_components=TINY_COMPONENT if tiny else "",
    )


def run_body(prompt: str = "Once upon a time", max_tokens: int = 8, **body: Any) -> dict[str, Any]:
    return {"input": {"prompt": prompt, "max_tokens": max_tokens}, **body}


def sse_events(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a Server-Sent Events body, in order."""
    events = []
    for block in text.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            events.append(json.loads(block.removeprefix("data: ")))
    return events


def poll(client: TestClient, task_id: str, until: Callable[[dict[str, Any]], bool]) -> dict:
    """GET the task until `until(body)` holds (or 30 s pass); its last body."""
    deadline = time.monotonic() + 30
    while True:
        body = client.get(f"/api/tasks/{task_id}").json()
        if until(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.02)
