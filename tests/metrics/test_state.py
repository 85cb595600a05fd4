"""The gauges read from a service at scrape time: each component's model
state, one state at a time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runtime.config import ComposeConfig
from runtime.errors import ModelComposeError
from runtime.service import Service
from tests.metrics.scrape import parse, value

BROKEN = """
workflow:
  job:
    component: missing
components:
  - id: missing
    type: model
    task: text-generation
    model: ./missing.gguf
    text: ${input.prompt}
"""


def states(service: Service, component: str) -> dict[str, float]:
    samples = parse(service.metrics.exposition(None)[0].decode())
    return {
        sample.labels["state"]: sample.value
        for sample in samples
        if sample.name == "model_compose_model_state" and sample.labels["component"] == component
    }


async def test_a_model_that_failed_to_load_is_failed_and_no_other_state(
    compose: Callable[[str], ComposeConfig],
) -> None:
    service = Service(compose(BROKEN))
    assert states(service, "missing") == {
        "loading": 0,
        "loaded": 0,
        "unloaded": 1,
        "failed": 0,
    }
    with pytest.raises(ModelComposeError):
        await service.start()
    assert states(service, "missing") == {"loading": 0, "loaded": 0, "unloaded": 0, "failed": 1}
    samples = parse(service.metrics.exposition(None)[0].decode())
    # Nothing loaded: no model to report slots of, and no run in progress.
    assert not [s for s in samples if s.name == "model_compose_slots"]
    assert value(samples, "model_compose_workflow_runs_in_progress") == 0


RELAY = """
workflows:
  - id: front
    default: true
    job:
      type: component
      component: relay
  - id: back
    job:
      component: writer
components:
  - id: relay
    type: workflow
    action:
      workflow: back
  - id: writer
    type: model
    task: text-generation
    model: ./unused.gguf
    prompt: ${input.prompt}
"""


def test_only_model_components_have_a_model_state(
    compose: Callable[[str], ComposeConfig],
) -> None:
    service = Service(compose(RELAY))
    samples = parse(service.metrics.exposition(None)[0].decode())
    components = {s.labels["component"] for s in samples if s.name == "model_compose_model_state"}
    assert components == {"writer"}
    assert states(service, "writer")["unloaded"] == 1
