"""Prometheus metrics of the predictor, served on their own port (`common.metrics_endpoint`).

Each predictor owns its registry, so several can run in one process (tests, notebooks)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mlplatform.common.model_loading import LoadedModel

_LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_QUEUE_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class PredictorMetrics:
    """Request counts and latency by model, version and status; batching; prediction logging.

    The request path keeps each label set's children (`labels(...)` finds them under a lock
    after checking and converting every label: about half of a metric's cost per call) in
    plain dicts. They hold what the registry holds already: one entry per label set seen.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._request_children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._model_children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        request_labels = ("api", "model_name", "model_version", "status")
        self.requests = Counter(
            "mlp_predictor_requests",
            "Prediction requests answered, by API, model, version and gRPC status.",
            request_labels,
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "mlp_predictor_request_latency_seconds",
            "Time from a prediction request's arrival to its answer, in the server.",
            request_labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "mlp_predictor_requests_in_flight",
            "Prediction requests being handled now.",
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "mlp_predictor_batch_rows",
            "Rows per model call.",
            ("model_name", "model_version"),
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "mlp_predictor_batch_requests",
            "Requests per model call (a request larger than the batch limit counts once per "
            "chunk).",
            ("model_name", "model_version"),
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "mlp_predictor_model_seconds",
            "Time of one model call (a whole batch).",
            ("model_name", "model_version"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "mlp_predictor_queue_wait_seconds",
            "Time a request waited in the batching queue before its model call started.",
            buckets=_QUEUE_BUCKETS,
            registry=self.registry,
        )
        self.log_dropped_rows = Counter(
            "mlp_predictor_log_dropped_rows",
            "Prediction rows not written to the store (buffer full or store failing).",
            registry=self.registry,
        )
        self.log_written_rows = Counter(
            "mlp_predictor_log_written_rows",
            "Prediction rows written to the store.",
            registry=self.registry,
        )
        self.model_loaded = Gauge(
            "mlp_predictor_model_loaded",
            "1 for the model version being served, by what serves it (backend: onnxruntime "
            "when compiled, sklearn otherwise).",
            ("model_name", "model_version", "backend"),
            registry=self.registry,
        )
        self.model_loads = Counter(
            "mlp_predictor_model_loads",
            "Model loads from the registry, by outcome (loaded, failed).",
            ("outcome",),
            registry=self.registry,
        )

    def request_answered(
        self, api: str, model_name: str, model_version: str, status: str, seconds: float
    ) -> None:
        labels = (api, model_name, model_version, status)
        children = self._request_children.get(labels)
        if children is None:
            children = (self.requests.labels(*labels), self.request_latency.labels(*labels))
            self._request_children[labels] = children
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def model_called(self, model: LoadedModel, rows: int, requests: int, seconds: float) -> None:
        """Record one model call of `rows` rows from `requests` requests."""
        labels = (model.name, model.version)
        children = self._model_children.get(labels)
        if children is None:
            children = (
                self.batch_rows.labels(*labels),
                self.batch_requests.labels(*labels),
                self.model_seconds.labels(*labels),
            )
            self._model_children[labels] = children
        batch_rows, batch_requests, model_seconds = children
        batch_rows.observe(rows)
        batch_requests.observe(requests)
        model_seconds.observe(seconds)

    def queue_waited(self, seconds: float) -> None:
        self.queue_wait.observe(seconds)

    def model_swapped(self, current: LoadedModel, previous: LoadedModel | None) -> None:
        """Point the served-model gauge at `current`."""
        if previous is not None:
            self.model_loaded.remove(previous.name, previous.version, previous.backend)
        self.model_loaded.labels(current.name, current.version, current.backend).set(1)
