"""Reading a service's /metrics over HTTP, as Prometheus does, in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

#: (sample name, sorted label pairs) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample `url` exposes; empty when it does not answer (yet)."""
    try:
        response = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample `name` with exactly `labels`, 0 when absent."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        found
        for (sample_name, sample_labels), found in samples.items()
        if sample_name == name and wanted <= set(sample_labels)
    )


def names(samples: Samples) -> set[str]:
    return {name for name, _labels in samples}
