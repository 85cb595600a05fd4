"""`ServiceMetrics`: one Service's Prometheus registry, the counters and
histograms its events update, and the scrape-time collector of its state.

Each Service has its own registry (never prometheus_client's global one), so
that several services in one process (tests, a worker beside an API server)
each report only their own. Label values are bounded: route templates, not
paths; component, workflow and model names from the compose file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from runtime.engine.types import GenerationResult, ModelInfo
from runtime.metrics.names import PREFIX, REMOTE_WORKFLOW, model_label
from runtime.metrics.state import ServiceStateCollector

if TYPE_CHECKING:
    from runtime.service import Service

# Seconds. Requests include whole streams and runs that wait for a slot.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# A first token on a laptop CPU: tens of milliseconds for a cached prompt,
# seconds for a long one, more behind a queue.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Decode time per token: 135M models run at hundreds of tokens a second, 3B
# models at a few.
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class ServiceMetrics:
    """The metrics of one Service. Other code adds its own on `registry`:
    `Gauge("model_compose_queue_depth", "...", ["queue"], registry=metrics.registry)`,
    or a collector read at scrape time with `add_collector`."""

    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.http_requests = Counter(
            f"{PREFIX}http_requests",
            "HTTP requests answered, by method, route template and status"
            " (both APIs, streams included; 499: the client left before any answer).",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_request_seconds = Histogram(
            f"{PREFIX}http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer (a stream's last event).",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.workflow_runs = Counter(
            f"{PREFIX}workflow_runs",
            "Workflow runs (tasks) finished, by workflow and final status"
            f" ({REMOTE_WORKFLOW}: runs sent to a queue's workers).",
            ["workflow", "status"],
            registry=registry,
        )
        self.generations = Counter(
            f"{PREFIX}generations",
            "Generations finished, by model, component and finish reason.",
            ["model", "component", "finish_reason"],
            registry=registry,
        )
        self.prompt_tokens = Counter(
            f"{PREFIX}prompt_tokens",
            "Prompt tokens of finished generations (cached ones included).",
            ["model", "component"],
            registry=registry,
        )
        self.cached_prompt_tokens = Counter(
            f"{PREFIX}cached_prompt_tokens",
            "Prompt tokens whose KV cache was reused instead of evaluated.",
            ["model", "component"],
            registry=registry,
        )
        self.completion_tokens = Counter(
            f"{PREFIX}completion_tokens",
            "Tokens generated (reasoning included).",
            ["model", "component"],
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            f"{PREFIX}time_to_first_token_seconds",
            "Time from a generation's submission (queueing included) to its first text.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.time_per_output_token = Histogram(
            f"{PREFIX}time_per_output_token_seconds",
            "Decode time per generated token, one observation per generation"
            " (its decode time over its tokens).",
            ["model"],
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        registry.register(ServiceStateCollector(service))

    def add_collector(self, collector: Collector) -> None:
        """Report `collector`'s metrics with the service's: its `collect()`
        runs at each scrape, on the service's event loop."""
        self.registry.register(collector)

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_request_seconds.labels(method, route).observe(seconds)

    def run_finished(self, workflow_id: str, status: str, *, remote: bool = False) -> None:
        """A run ended; `remote`: a queue's workers ran it (see `REMOTE_WORKFLOW`)."""
        self.workflow_runs.labels(REMOTE_WORKFLOW if remote else workflow_id, status).inc()

    def generation_finished(
        self, component_id: str, info: ModelInfo, result: GenerationResult
    ) -> None:
        model = model_label(info.path)
        usage, timings = result.usage, result.timings
        self.generations.labels(model, component_id, str(result.finish_reason)).inc()
        self.prompt_tokens.labels(model, component_id).inc(usage.prompt_tokens)
        self.cached_prompt_tokens.labels(model, component_id).inc(usage.cached_tokens)
        self.completion_tokens.labels(model, component_id).inc(usage.completion_tokens)
        if timings.ttft_s > 0:  # 0: nothing was generated
            self.time_to_first_token.labels(model).observe(timings.ttft_s)
        if timings.tokens_per_s > 0:
            self.time_per_output_token.labels(model).observe(1 / timings.tokens_per_s)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics as the `Accept` header asks (Prometheus text, or
        OpenMetrics), and their content type."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
