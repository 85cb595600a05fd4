"""What the events of a service count, without a model: label values stay
within the compose file's names."""

from __future__ import annotations

from collections.abc import Callable

from runtime.config import ComposeConfig
from runtime.engine.types import FinishReason, GenerationResult, ModelInfo, Timings, Usage
from runtime.service import Service
from tests.metrics.scrape import label_values, parse, value
from tests.server.composes import writer_compose

INFO = ModelInfo(
    path="/models/tiny.Q4_0.gguf",
    name="Tiny",
    context_length=64,
    trained_context_length=64,
    n_gpu_layers=0,
    n_threads=1,
    n_batch=64,
)


def test_runs_sent_to_a_queue_share_one_workflow_label(
    compose: Callable[[str], ComposeConfig],
) -> None:
    metrics = Service(compose(writer_compose())).metrics
    metrics.run_finished("write", "completed")
    for name in ("made-up-1", "made-up-2"):  # whatever a client names
        metrics.run_finished(name, "failed", remote=True)
    samples = parse(metrics.exposition(None)[0].decode())
    workflows = label_values(samples, "model_compose_workflow_runs_total", "workflow")
    assert workflows == {"write", "<remote>"}
    assert value(samples, "model_compose_workflow_runs_total", workflow="<remote>") == 2


def test_a_generation_counts_its_tokens_and_latencies_under_its_model_file(
    compose: Callable[[str], ComposeConfig],
) -> None:
    metrics = Service(compose(writer_compose())).metrics
    result = GenerationResult(
        "text",
        FinishReason.STOP,
        Usage(prompt_tokens=10, cached_tokens=4, completion_tokens=5),
        Timings(ttft_s=0.2, total_s=0.7, tokens_per_s=10.0),
    )
    metrics.generation_finished("writer", INFO, result)
    samples = parse(metrics.exposition(None)[0].decode())
    labels = {"model": "tiny.Q4_0.gguf", "component": "writer"}
    assert value(samples, "model_compose_prompt_tokens_total", **labels) == 10
    assert value(samples, "model_compose_cached_prompt_tokens_total", **labels) == 4
    assert value(samples, "model_compose_completion_tokens_total", **labels) == 5
    assert value(samples, "model_compose_generations_total", **labels, finish_reason="stop") == 1
    ttft = {"model": "tiny.Q4_0.gguf"}
    assert value(samples, "model_compose_time_to_first_token_seconds_sum", **ttft) == 0.2
    assert value(samples, "model_compose_time_per_output_token_seconds_sum", **ttft) == 0.1
    # 0.2 s lands in the 0.25 s bucket, not the 0.1 s one.
    bucket = "model_compose_time_to_first_token_seconds_bucket"
    assert value(samples, bucket, **ttft, le="0.1") == 0
    assert value(samples, bucket, **ttft, le="0.25") == 1


def test_a_generation_that_produced_nothing_observes_no_latency(
    compose: Callable[[str], ComposeConfig],
) -> None:
    metrics = Service(compose(writer_compose())).metrics
    empty = GenerationResult("", FinishReason.CANCELLED, Usage(prompt_tokens=3))
    metrics.generation_finished("writer", INFO, empty)
    samples = parse(metrics.exposition(None)[0].decode())
    assert value(samples, "model_compose_generations_total", finish_reason="cancelled") == 1
    assert value(samples, "model_compose_time_to_first_token_seconds_count") == 0
    assert value(samples, "model_compose_time_per_output_token_seconds_count") == 0
