"""controller.queue (a front) and the queue-subscriber adapter (a worker):
model-compose's keys and defaults load; bad values are located."""

from __future__ import annotations

import textwrap
from pathlib import Path

from runtime.config.schema import HttpServerAdapter, QueueSubscriberAdapter
from runtime.config.units import parse_size
from tests.config.test_loader import config_of, problems

WORKFLOW = """
workflow:
  id: echo
  job: {component: chat}
component:
  id: chat
  type: model
  task: chat-completion
  model: ./m.gguf
  action:
    messages: [{role: user, content: "${input.text}"}]
"""


def with_workflow(controller: str) -> str:
    return textwrap.dedent(controller) + WORKFLOW


def test_model_compose_worker_keys_load_with_its_defaults(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        with_workflow(
            """
        controller:
          adapter:
            type: queue-subscriber
            driver: redis
            host: localhost
            port: 6379
            name: my-queue
            workflow: echo
            pop_timeout: 500ms
        """
        ),
    )
    adapter = config.controller.subscriber
    assert isinstance(adapter, QueueSubscriberAdapter)
    assert adapter.workflows == ["echo"] and adapter.name == "my-queue"
    assert adapter.result_ttl == "1h" and adapter.max_concurrent_count is None
    assert adapter.visibility_timeout == "30s" and adapter.max_attempts == 3
    assert config.controller.http is None and config.controller.queue is None


def test_a_front_keeps_its_http_adapter_and_gets_a_queue(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        with_workflow(
            """
        controller:
          adapter: {port: 8080, base_path: /api}
          queue: {driver: redis, url: "redis://127.0.0.1:6380/0", name: q, max_blob_size: 50M}
        """
        ),
    )
    assert isinstance(config.controller.http, HttpServerAdapter)
    queue = config.controller.queue
    assert queue is not None and queue.url == "redis://127.0.0.1:6380/0"
    assert queue.timeout == "0s" and queue.max_queue == 64
    # model-compose's one-letter sizes are binary.
    assert parse_size("50M") == 50 * 1024 * 1024


def test_bad_queue_values_are_located(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        with_workflow(
            """
        controller:
          queue:
            driver: redis
            url: redis://x
            host: y
            visibility_timeout: 1s
            timeout: soon
            max_queue: 0
          adapter:
            type: queue-subscriber
            workflows: [echo, ehco]
            port: 70000
            pop_timeout: 0
            max_attempts: 0
        """
        ),
    )
    assert (
        found
        == [
            "5: controller.queue: write either 'url' or 'host', not both",
            "6: controller.queue: unknown key 'visibility_timeout'",
            "7: controller.queue.timeout: expected a duration like 30s, 10m or 1h, got 'soon'",
            "8: controller.queue.max_queue: max_queue must be at least 1, got 0",
            "11: controller.adapters[0].workflows: unknown workflow 'ehco' (did you mean 'echo'?)"
            " (this file defines: echo)",
            "12: controller.adapters[0].port: port must be from 1 to 65535, got 70000",
            "13: controller.adapters[0].pop_timeout: pop_timeout must be more than 0",
            "14: controller.adapters[0].max_attempts: max_attempts must be at least 1, got 0",
        ]
        or found
    )


def test_an_unknown_adapter_type_names_the_known_ones(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        with_workflow(
            """
        controller:
          adapter:
            type: queue-subscribr
            driver: redis
        """
        ),
    )
    assert found == [
        "3: controller.adapters[0]: unknown type 'queue-subscribr'"
        " (supported: http-server, queue-subscriber)"
    ]
