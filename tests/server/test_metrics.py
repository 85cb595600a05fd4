"""GET /metrics on a real server on the embedded model: after a workflow
run, a /v1 chat completion and a streamed one (the official `openai`
client), the counters, histograms and gauges say what happened; the route
needs the API key like every route but /health."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI
from prometheus_client.samples import Sample

from runtime.engine.types import Usage
from tests.metrics.scrape import label_values, parse, value
from tests.server.composes import writer_compose
from tests.server.conftest import LiveServer

KEY = {"Authorization": "Bearer secret"}
UNAUTHORIZED = {
    "error": {
        "type": "unauthorized",
        "message": "a valid API key is required: send 'Authorization: Bearer <key>'",
    }
}
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT = """
controller:
  base_path: /api
  api_key: secret
workflows:
  - id: ask
    default: true
    job:
      component: chat
components:
  - id: chat
    type: model
    task: chat-completion
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    messages:
      - role: user
        content: ${input.question}
    max_output_length: 6
    params:
      do_sample: false
"""
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def server(live_server: Callable[..., LiveServer], embedded_model_path: Path) -> LiveServer:
    return live_server(CHAT)


def scrape(url: str, until: Callable[[list[Sample]], bool] = lambda _: True) -> list[Sample]:
    """The metrics once `until` holds (a request is counted as its answer
    ends, which the client may see a moment before the server counts it)."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(url, headers=KEY)
        assert response.status_code == 200, response.text
        samples = parse(response.text)
        if until(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_runs_requests_tokens_and_latencies_are_counted_and_the_slots_are_free_again(
    server: LiveServer,
) -> None:
    run = httpx.post(
        server.url + "/api/workflows/runs",
        json={"input": {"question": "What is the capital of France?"}},
        headers=KEY,
        timeout=60,
    ).json()
    assert run["status"] == "completed"
    service = server.app.state.service
    run_usage = service.tasks.get(run["task_id"]).usage
    client = OpenAI(base_url=server.url + "/v1", api_key="secret", max_retries=0, timeout=60)
    reply = client.chat.completions.create(
        model="chat", messages=QUESTION, temperature=0, max_tokens=6
    )
    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=QUESTION,
            temperature=0,
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert reply.usage is not None and chunks[-1].usage is not None
    usages = [
        run_usage,
        Usage(reply.usage.prompt_tokens, 0, reply.usage.completion_tokens),
        Usage(chunks[-1].usage.prompt_tokens, 0, chunks[-1].usage.completion_tokens),
    ]

    chat = {"method": "POST", "route": "/v1/chat/completions", "status": "200"}
    samples = scrape(
        server.url + "/metrics",
        until=lambda s: value(s, "model_compose_http_requests_total", **chat) == 2,
    )

    def count(name: str, **labels: str) -> float:
        return value(samples, name, **labels)

    runs = {"method": "POST", "route": "/api/workflows/runs", "status": "200"}
    assert count("model_compose_http_requests_total", **runs) == 1
    assert count("model_compose_http_requests_total", **chat) == 2  # the stream too
    assert count("model_compose_http_request_duration_seconds_count", route=chat["route"]) == 2
    assert count("model_compose_http_requests_total", route="/api/health", status="200") >= 1
    assert "/api/workflows/runs" in label_values(
        samples, "model_compose_http_requests_total", "route"
    )
    assert count("model_compose_workflow_runs_total", workflow="ask", status="completed") == 1

    tokens = {"model": MODEL_FILE, "component": "chat"}
    prompt = sum(u.prompt_tokens for u in usages)
    completion = sum(u.completion_tokens for u in usages)
    assert count("model_compose_prompt_tokens_total", **tokens) == prompt
    assert count("model_compose_completion_tokens_total", **tokens) == completion
    # The same question three times: the second and third reuse the first's KV cache.
    assert count("model_compose_cached_prompt_tokens_total", **tokens) > 0
    assert count("model_compose_generations_total", **tokens) == 3
    assert count("model_compose_time_to_first_token_seconds_count", model=MODEL_FILE) == 3
    assert count("model_compose_time_to_first_token_seconds_sum", model=MODEL_FILE) > 0
    assert count("model_compose_time_per_output_token_seconds_count", model=MODEL_FILE) == 3

    model = {"model": MODEL_FILE}
    assert count("model_compose_slots", **model) == 4  # the default parallel
    assert count("model_compose_slots_busy", **model) == 0
    assert count("model_compose_requests_waiting", **model) == 0
    assert count("model_compose_kv_cells", **model) > count("model_compose_kv_cells_used", **model)
    assert count("model_compose_kv_cells_used", **model) > 0  # kept for prefix reuse
    assert count("model_compose_model_state", component="chat", state="loaded") == 1
    assert count("model_compose_model_state", component="chat") == 1  # one state at a time
    assert count("model_compose_workflow_runs_in_progress", workflow="ask") == 0


def test_metrics_need_the_api_key_at_the_root_and_under_the_base_path(
    server: LiveServer,
) -> None:
    for path in ("/metrics", "/api/metrics"):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = httpx.get(server.url + path, headers=headers)
            assert refused.status_code == 401, path
            assert refused.json() == UNAUTHORIZED
            assert refused.headers["www-authenticate"] == "Bearer"
        answered = httpx.get(server.url + path, headers=KEY)
        assert answered.status_code == 200
        assert answered.headers["content-type"].startswith("text/plain")
    # Refusals are counted under the route they were for, not as unmatched paths.
    samples = scrape(server.url + "/metrics")
    for route in ("/metrics", "/api/metrics"):
        assert value(samples, "model_compose_http_requests_total", route=route, status="401") == 2


def test_a_scraper_that_asks_for_openmetrics_gets_it(server: LiveServer) -> None:
    accept = "application/openmetrics-text; version=1.0.0"
    response = httpx.get(server.url + "/metrics", headers={**KEY, "Accept": accept})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_the_document_lists_metrics_under_the_base_path_behind_the_key(
    client_for: Callable[..., TestClient],
) -> None:
    client = client_for(writer_compose(api_key="secret"), ready=False)
    paths = client.get("/openapi.json", headers=KEY).json()["paths"]
    assert "/metrics" not in paths  # the root copy, as for /health
    operation = paths["/api/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert operation["security"] == [{"apiKey": []}]
