"""The gauges of a Service, read from it at scrape time: what each
component's model is doing (loaded, loading, unloaded, failed), how busy
each loaded model is (slots, waiting requests, KV cells), and the runs in
progress. Nothing is stored between scrapes, so nothing can drift.

`collect` runs on the service's event loop (both servers of /metrics serve
there), so what it reads does not change while it reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric

from runtime.config.schema import ModelComponent
from runtime.engine.pooled_model import ModelState
from runtime.metrics.names import PREFIX, REMOTE_WORKFLOW, model_label
from runtime.workflow.tasks import TaskStatus

if TYPE_CHECKING:
    from runtime.service import Service

# A component that was asked for and whose model failed to load (preload).
FAILED = "failed"
STATES = [*(str(state) for state in ModelState), FAILED]
IN_PROGRESS = (TaskStatus.PENDING, TaskStatus.PROCESSING)


@dataclass
class ModelLoad:
    """One model file's load, summed over its entries in the pool (the same
    file loaded with different settings is rare, and adds up meaningfully)."""

    slots: int = 0
    slots_busy: int = 0
    requests_waiting: int = 0
    kv_cells: int = 0
    kv_cells_used: int = 0


# A gauge per `ModelLoad` field, labelled by model: its name and meaning.
LOAD_GAUGES = {
    "slots": "Sequences the model can decode together (parallel).",
    "slots_busy": "Slots holding an unfinished request.",
    "requests_waiting": "Requests queued for a free slot.",
    "kv_cells": "KV cache cells allocated (0 while unloaded).",
    "kv_cells_used": "KV cache cells the slots' sequences hold (running, or kept for"
    " prefix reuse).",
}


class ServiceStateCollector:
    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        yield self.model_states()
        yield from self.model_loads()
        yield self.runs_in_progress()

    def model_states(self) -> Metric:
        gauge = GaugeMetricFamily(
            f"{PREFIX}model_state",
            "1 for the state each component's model is in (loaded, loading, unloaded"
            " (never loaded yet, or after keep_alive), failed), 0 for the others.",
            labels=["component", "state"],
        )
        for component in self.service.config.components:
            if not isinstance(component, ModelComponent):
                continue  # a workflow component runs a workflow, not a model
            current = self.component_state(component.id)
            for state in STATES:
                gauge.add_metric([component.id, state], 1 if state == current else 0)
        return gauge

    def component_state(self, component_id: str) -> str:
        components = self.service.components
        if component_id in components.failures:
            return FAILED
        model = components.pooled(component_id)
        return str(model.state) if model is not None else str(ModelState.UNLOADED)

    def model_loads(self) -> Iterator[Metric]:
        loads: dict[str, ModelLoad] = {}
        for model in self.service.pool.models():
            load = loads.setdefault(model_label(model.spec.path), ModelLoad())
            engine = model.engine
            if engine is None:  # unloaded after keep_alive, or loading again
                load.slots += model.spec.parallel
                continue
            stats = engine.stats()
            memory = engine.info.memory
            load.slots += stats.slots
            load.slots_busy += stats.busy
            load.requests_waiting += stats.waiting
            load.kv_cells += memory.kv_cells if memory is not None else 0
            load.kv_cells_used += stats.kv_cells_used
        for name, documentation in LOAD_GAUGES.items():
            gauge = GaugeMetricFamily(f"{PREFIX}{name}", documentation, labels=["model"])
            for model_name, load in loads.items():
                gauge.add_metric([model_name], getattr(load, name))
            yield gauge

    def runs_in_progress(self) -> Metric:
        gauge = GaugeMetricFamily(
            f"{PREFIX}workflow_runs_in_progress",
            "Workflow runs not finished: pending (waiting for"
            f" controller.max_concurrent_count) or processing ({REMOTE_WORKFLOW}: on a"
            " queue's workers).",
            labels=["workflow", "status"],
        )
        workflows = [workflow.id for workflow in self.service.config.workflows]
        if self.service.queue is not None:
            workflows.append(REMOTE_WORKFLOW)
        counts = Counter(
            (task.workflow_id if task.workflow_id in workflows else REMOTE_WORKFLOW, task.status)
            for task in self.service.tasks.running()
        )
        for workflow_id in workflows:
            for status in IN_PROGRESS:
                gauge.add_metric([workflow_id, str(status)], counts[(workflow_id, status)])
        return gauge
