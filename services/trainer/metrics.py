"""Prometheus metrics of a trainer worker (conventions: mlplatform/common/metrics_endpoint.py).

Pipelines are counted by how the worker settled them (`TrainerHandler`); step and model
durations are read off the `PipelineEvent`s the runner emits anyway (`ObservedEvents` sits in
front of the event sink), so the runner itself knows nothing of metrics.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mlplatform.common.metrics_endpoint import QueueMetrics
from mlplatform.trainer.runner import EventSink
from mlplatform.v1 import messages_pb2

_TRAINING_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

#: How a delivery ended, as `mlp_trainer_pipelines_total{outcome}` counts it.
OUTCOMES = (
    "succeeded",  # the run succeeded (or had, for a redelivered message)
    "failed",  # the run failed for a reason the pipeline's author must fix
    "invalid",  # the definition was refused before anything ran (dead-lettered)
    "rejected",  # the message was not a SubmitPipeline (dead-lettered)
    "deferred",  # another worker holds the run's lease
    "retried",  # a transient failure (store, MLflow unreachable); it comes back later
    "gave_up",  # transient failures past --max-attempts (run failed, dead-lettered)
)


class TrainerMetrics:
    """Pipelines by outcome, their durations, step and model durations, runs in progress."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.queue = QueueMetrics(self.registry)
        self.pipelines = Counter(
            "mlp_trainer_pipelines",
            "Pipeline messages settled, by outcome (succeeded, failed, invalid, rejected, "
            "deferred, retried, gave_up).",
            ("outcome",),
            registry=self.registry,
        )
        self.pipeline_seconds = Histogram(
            "mlp_trainer_pipeline_seconds",
            "Time from a pipeline message's arrival to its outcome.",
            ("outcome",),
            buckets=_TRAINING_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "mlp_trainer_pipelines_in_progress",
            "Pipelines this worker is running now.",
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "mlp_trainer_step_seconds",
            "Time of one pipeline step, by step and outcome (succeeded, failed).",
            ("step", "outcome"),
            buckets=_TRAINING_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "mlp_trainer_model_seconds",
            "Time to evaluate one model (its cross-validation; a tuning or an ensemble), by "
            "stage (compare, tune, blend, stack) and PyCaret estimator id.",
            ("stage", "estimator"),
            buckets=_MODEL_BUCKETS,
            registry=self.registry,
        )
        self._runs: dict[str, _RunClock] = {}
        self._lock = threading.Lock()

    def pipeline_settled(self, outcome: str, seconds: float) -> None:
        self.pipelines.labels(outcome).inc()
        self.pipeline_seconds.labels(outcome).observe(seconds)

    def running(self) -> AbstractContextManager[object]:
        """Counts a run in progress for the duration of the block."""
        return self.in_progress.track_inprogress()

    def observe(self, event: messages_pb2.PipelineEvent) -> None:
        """Steps and models timed from the events' `elapsed_seconds` (since the run began)."""
        elapsed = event.elapsed_seconds
        kind = event.kind
        with self._lock:
            if kind in (messages_pb2.PIPELINE_EVENT_KIND_RUN, 0):
                clock = self._runs.pop(event.pipeline_id, None)
                if event.status == messages_pb2.RUN_STATUS_RUNNING:  # a new attempt begins
                    self._runs[event.pipeline_id] = _RunClock(elapsed)
                elif clock is not None and clock.step and clock.step == event.step:
                    self._step(clock.step, "failed", elapsed - clock.step_began)
                return
            clock = self._runs.setdefault(event.pipeline_id, _RunClock(elapsed))
            if kind == messages_pb2.PIPELINE_EVENT_KIND_STEP_STARTED:
                clock.step, clock.step_began = event.step, elapsed
            elif kind == messages_pb2.PIPELINE_EVENT_KIND_STEP_FINISHED and clock.step:
                self._step(clock.step, "succeeded", elapsed - clock.step_began)
                clock.step = ""
            elif kind == messages_pb2.PIPELINE_EVENT_KIND_MODEL_EVALUATED:
                model = event.model
                estimator = model.estimator_id or "ensemble"
                self.model_seconds.labels(model.stage, estimator).observe(
                    max(elapsed - clock.last, 0.0)
                )
            clock.last = elapsed

    def _step(self, step: str, outcome: str, seconds: float) -> None:
        self.step_seconds.labels(step, outcome).observe(max(seconds, 0.0))


class _RunClock:
    """Where one run is: its last event's time and the step in progress."""

    def __init__(self, began: float) -> None:
        self.last = began
        self.step = ""
        self.step_began = began


class ObservedEvents:
    """An event sink that shows every event to the metrics, then passes it on."""

    def __init__(self, inner: EventSink, metrics: TrainerMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def publish(self, event: messages_pb2.PipelineEvent) -> None:
        self.metrics.observe(event)
        self.inner.publish(event)


def running(metrics: TrainerMetrics | None) -> AbstractContextManager[object]:
    """`metrics.running()`, or nothing when the worker has no metrics."""
    return nullcontext() if metrics is None else metrics.running()
