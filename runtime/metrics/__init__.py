"""Prometheus metrics of one Service: what happened (requests, runs, tokens,
latencies: counted where it happens) and what is (slots, queues, KV cache,
model states: read from the service at scrape time), in one registry per
Service, served at `GET /metrics` by the API server or by `serve_metrics`
in a process without one.

`serve_metrics` and `MetricsServer` bring in the HTTP stack (uvicorn,
Starlette), so they are imported on first use: every Service imports this
package, and `model-compose run` needs no server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runtime.metrics.names import model_label
from runtime.metrics.service_metrics import ServiceMetrics

if TYPE_CHECKING:
    from runtime.metrics.serve import MetricsServer, serve_metrics

_LAZY = {"MetricsServer": "runtime.metrics.serve", "serve_metrics": "runtime.metrics.serve"}

__all__ = ["MetricsServer", "ServiceMetrics", "model_label", "serve_metrics"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
