"""Prometheus metrics of one Service: what happened (requests, runs, tokens,
latencies: counted where it happens) and what is (slots, queues, KV cache,
model states: read from the service at scrape time), in one registry per
Service, served at `GET /metrics` by the API server or by `serve_metrics`
in a process without one."""

from runtime.metrics.names import model_label
from runtime.metrics.serve import MetricsServer, serve_metrics
from runtime.metrics.service_metrics import ServiceMetrics

__all__ = ["MetricsServer", "ServiceMetrics", "model_label", "serve_metrics"]
