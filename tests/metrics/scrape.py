"""Reading a /metrics answer the way Prometheus does, for the tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def parse(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition (parsed by prometheus_client)."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`
    (0 when there are none: a counter not incremented yet)."""
    return sum(
        sample.value
        for sample in samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def label_values(samples: list[Sample], name: str, label: str) -> set[str]:
    return {sample.labels[label] for sample in samples if sample.name == name}
