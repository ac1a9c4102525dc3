"""Live progress of a run: the `PipelineEvent`s a trainer publishes and keeps on the run record.

The runner announces run and step changes; steps report finer progress through
`StepProgress` (a phase began, model N of M was cross-validated with its score). Every event
goes to the same place: the broker's events exchange for whoever follows the run live, and
the run's record in the store for whoever looks later (`mlp runs watch`, `mlp runs show`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from mlplatform.common.store import RunEvent, RunStatus
from mlplatform.v1 import messages_pb2

EVENT_STATUS = {
    RunStatus.QUEUED: messages_pb2.RUN_STATUS_QUEUED,
    RunStatus.RUNNING: messages_pb2.RUN_STATUS_RUNNING,
    RunStatus.SUCCEEDED: messages_pb2.RUN_STATUS_SUCCEEDED,
    RunStatus.FAILED: messages_pb2.RUN_STATUS_FAILED,
}
_RUN_STATUS = {number: status for status, number in EVENT_STATUS.items()}

#: Event kinds as the store keeps them (the enum's short names).
KIND_NAMES = {
    messages_pb2.PIPELINE_EVENT_KIND_UNSPECIFIED: "run",
    messages_pb2.PIPELINE_EVENT_KIND_RUN: "run",
    messages_pb2.PIPELINE_EVENT_KIND_STEP_STARTED: "step_started",
    messages_pb2.PIPELINE_EVENT_KIND_STEP_FINISHED: "step_finished",
    messages_pb2.PIPELINE_EVENT_KIND_MODEL_EVALUATED: "model_evaluated",
    messages_pb2.PIPELINE_EVENT_KIND_PHASE: "phase",
}


def pipeline_event(
    pipeline_id: str,
    status: RunStatus,
    step: str,
    message: str,
    elapsed: float,
    kind: int = messages_pb2.PIPELINE_EVENT_KIND_RUN,
    model: messages_pb2.ModelProgress | None = None,
    phase: str = "",
) -> messages_pb2.PipelineEvent:
    occurred_at = timestamp_pb2.Timestamp()
    occurred_at.FromDatetime(datetime.now(UTC))
    return messages_pb2.PipelineEvent(
        pipeline_id=pipeline_id,
        status=EVENT_STATUS[status],
        step=step,
        message=message,
        occurred_at=occurred_at,
        elapsed_seconds=max(elapsed, 0.0),
        kind=kind,
        model=model,
        phase=phase,
    )


def run_event_record(event: messages_pb2.PipelineEvent) -> RunEvent:
    """The store's form of an event."""
    model = None
    if event.HasField("model"):
        progress = event.model
        model = {
            "stage": progress.stage,
            "model_name": progress.model_name,
            "estimator_id": progress.estimator_id or None,
            "index": progress.index,
            "total": progress.total,
            "metric": progress.metric,
            "score": progress.score if progress.HasField("score") else None,
        }
    return RunEvent(
        occurred_at=event.occurred_at.ToDatetime(tzinfo=UTC),
        kind=KIND_NAMES.get(event.kind, "run"),
        status=_RUN_STATUS.get(event.status, RunStatus.RUNNING),
        step=event.step or None,
        message=event.message,
        elapsed_seconds=event.elapsed_seconds,
        model=model,
        phase=event.phase or None,
    )


class StepProgress:
    """What a running step reports: phases it enters and models it has cross-validated."""

    def __init__(
        self,
        pipeline_id: str,
        emit: Callable[[messages_pb2.PipelineEvent], None],
        started: float,
    ) -> None:
        self.pipeline_id = pipeline_id
        self.step = ""
        self._emit = emit
        self._started = started

    def phase(self, phase: str, message: str) -> None:
        self._emit(
            pipeline_event(
                self.pipeline_id,
                RunStatus.RUNNING,
                self.step,
                message,
                time.monotonic() - self._started,
                kind=messages_pb2.PIPELINE_EVENT_KIND_PHASE,
                phase=phase,
            )
        )

    def model_evaluated(
        self,
        stage: str,
        model_name: str,
        estimator_id: str | None,
        index: int,
        total: int,
        metric: str,
        score: float | None,
    ) -> None:
        progress = messages_pb2.ModelProgress(
            stage=stage,
            model_name=model_name,
            estimator_id=estimator_id or "",
            index=index,
            total=total,
            metric=metric,
            score=score,
        )
        of_total = f" of {total}" if total else ""
        scored = "no score" if score is None else f"{metric} {score:.4f}"
        self._emit(
            pipeline_event(
                self.pipeline_id,
                RunStatus.RUNNING,
                self.step,
                f"{stage}: model {index}{of_total} {model_name}: {scored}",
                time.monotonic() - self._started,
                kind=messages_pb2.PIPELINE_EVENT_KIND_MODEL_EVALUATED,
                model=progress,
            )
        )
