"""Prometheus metrics of a batch inferer (conventions: mlplatform/common/metrics_endpoint.py).

Rows are a counter, so `rate(mlp_inferer_rows_total[1m])` is rows per second. Lag is how long
a part waited and ran: from its publication (the message's AMQP timestamp, whole seconds) to
its rows being stored and counted.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from mlplatform.common.consumer import Defer, Done, Outcome, Reject
from mlplatform.common.metrics_endpoint import QueueMetrics

_LAG_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
_PART_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: Outcome names of `mlp_inferer_parts_total{outcome}`.
OUTCOME_NAMES: dict[type, str] = {Done: "done", Reject: "rejected", Defer: "retried"}


class InfererMetrics:
    """Rows predicted, parts by outcome, model time per part, lag."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.queue = QueueMetrics(self.registry)
        self.rows = Counter(
            "mlp_inferer_rows",
            "Rows predicted and stored, by model and version.",
            ("model_name", "model_version"),
            registry=self.registry,
        )
        self.parts = Counter(
            "mlp_inferer_parts",
            "Batch parts settled, by outcome (done; rejected: dead-lettered; retried).",
            ("outcome",),
            registry=self.registry,
        )
        self.predict_seconds = Histogram(
            "mlp_inferer_predict_seconds",
            "Time of the model calls of one part.",
            ("model_name", "model_version"),
            buckets=_PART_BUCKETS,
            registry=self.registry,
        )
        self.lag = Histogram(
            "mlp_inferer_part_lag_seconds",
            "Time from a part's publication to its rows being stored and counted.",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )

    def part_settled(self, outcome: Outcome) -> None:
        self.parts.labels(OUTCOME_NAMES[type(outcome)]).inc()

    def part_stored(
        self,
        model_name: str,
        model_version: str,
        rows: int,
        predict_seconds: float,
        published_at: int | None,
    ) -> None:
        self.rows.labels(model_name, model_version).inc(rows)
        self.predict_seconds.labels(model_name, model_version).observe(predict_seconds)
        if published_at:
            self.lag.observe(max(time.time() - published_at, 0.0))
