"""The queue's metrics, read at scrape time from the front (runs waiting for
a worker's answer, queue depths as last looked at) and the worker (slots,
runs held, runs answered by outcome)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from runtime.metrics.names import PREFIX

if TYPE_CHECKING:
    from runtime.service import Service


class QueueCollector:
    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        front, worker = self.service.queue, self.service.worker
        depth = GaugeMetricFamily(
            f"{PREFIX}queue_depth",
            "Runs waiting in Redis for a worker, by queue and workflow (looked at every 2s).",
            labels=["queue", "workflow"],
        )
        if front is not None:
            for workflow_id, runs in sorted(front.depths.items()):
                depth.add_metric([front.config.name, workflow_id], runs)
            waiting = GaugeMetricFamily(
                f"{PREFIX}queue_runs_dispatched",
                "Runs this front queued and still waits on (queued or on a worker).",
                labels=["queue"],
            )
            waiting.add_metric([front.config.name], front.pending)
            yield waiting
        if worker is not None:
            name = worker.adapter.name
            for workflow_id, runs in sorted(worker.depths.items()):
                if front is None or workflow_id not in front.depths:
                    depth.add_metric([name, workflow_id], runs)
            slots = GaugeMetricFamily(
                f"{PREFIX}queue_worker_slots", "Runs this worker takes at once.", labels=["queue"]
            )
            slots.add_metric([name], worker.slots)
            busy = GaugeMetricFamily(
                f"{PREFIX}queue_worker_runs_held",
                "Runs this worker holds now (taken, not yet answered).",
                labels=["queue"],
            )
            busy.add_metric([name], worker.busy)
            outcomes = CounterMetricFamily(
                f"{PREFIX}queue_worker_runs",
                "Runs this worker answered, by status (completed, failed, cancelled), and"
                " dead workers' runs it put back in the queue (requeued).",
                labels=["queue", "status"],
            )
            for status, count in sorted(worker.counts.items()):
                outcomes.add_metric([name, status], count)
            yield from (slots, busy, outcomes)
        yield depth
