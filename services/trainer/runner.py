"""Runs one pipeline: its steps in order, every change recorded in the store and announced.

Transport-free: the queue worker and `mlp train` both call `PipelineRunner.run`. A step
that fails for a reason the user must fix (`StepFailure`, or any error inside PyCaret)
marks the run failed; an infrastructure fault (store or MLflow unreachable) propagates as
`TransientFailure` so the worker can retry the job later, a bounded number of times.

Over 300 lines: a run's whole lifecycle (claiming it, ending an abandoned attempt, the step
loop with its events, the failure and success records and the one-line outcome) stays in one
place, so what a run records can be read top to bottom.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from google.protobuf import json_format

from mlplatform.client.data_roots import DataRoots
from mlplatform.common.faults import is_transient
from mlplatform.common.settings import Settings
from mlplatform.common.store import (
    NotFoundError,
    PipelineRun,
    RunError,
    RunStatus,
    StepRecord,
    StepStatus,
    Store,
    utc_now,
)
from mlplatform.trainer.progress import StepProgress, pipeline_event, run_event_record
from mlplatform.trainer.steps import PipelineContext, StepFailure
from mlplatform.trainer.steps.base import DataLimits, run_step
from mlplatform.trainer.tracking import PipelineTracking
from mlplatform.v1 import messages_pb2

logger = logging.getLogger(__name__)


class TransientFailure(Exception):
    """The run could not proceed for a reason outside the pipeline; try again later."""


class EventSink(Protocol):
    """Where `PipelineEvent`s go (the broker's event exchange, or nowhere)."""

    def publish(self, event: messages_pb2.PipelineEvent) -> None: ...


class DiscardEvents:
    """An event sink for runs nobody follows live (`mlp train` prints instead)."""

    def publish(self, event: messages_pb2.PipelineEvent) -> None:
        logger.debug("event %s", event)


def new_run_record(submission: messages_pb2.SubmitPipeline) -> PipelineRun:
    """The `queued` record of a submission."""
    config = submission.definition.experiment_config
    return PipelineRun(
        pipeline_id=submission.pipeline_id,
        definition=json_format.MessageToDict(submission.definition),
        experiment_name=config.experiment_name,
        model_name=config.model_name or None,
        submitted_by=submission.submitted_by or None,
    )


class PipelineRunner:
    """Runs pipelines against one store, one MLflow tracking URI and one event sink."""

    def __init__(
        self,
        store: Store,
        tracking_uri: str,
        events: EventSink | None = None,
        kaggle_downloader: Callable[[str, str, str], str] | None = None,
        before_step: Callable[[str, PipelineContext], None] | None = None,
        data_roots: DataRoots | None = None,
        data_limits: DataLimits | None = None,
    ) -> None:
        if data_roots is None or data_limits is None:
            settings = Settings()  # read now: each runner follows the environment it starts in
            data_roots = data_roots or settings.resolved_data_roots
            data_limits = data_limits or DataLimits(settings.max_data_bytes, settings.max_zip_ratio)
        self.data_roots = data_roots
        self.data_limits = data_limits
        self.store = store
        self.tracking_uri = tracking_uri
        self.events = events or DiscardEvents()
        self.kaggle_downloader = kaggle_downloader
        #: Called before each step; tests use it to simulate long or failing steps.
        self.before_step = before_step

    def run(self, submission: messages_pb2.SubmitPipeline, worker_id: str = "") -> PipelineRun:
        """Runs the pipeline unless its run already ended; returns the final record."""
        pipeline_id = submission.pipeline_id
        try:
            created = self.store.create_run(new_run_record(submission))
        except Exception as error:
            if is_transient(error):
                raise TransientFailure(f"store unreachable: {error}") from error
            raise
        existing = created.record
        if existing.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            logger.info("pipeline %s already %s; not run again", pipeline_id, existing.status)
            return existing
        started = time.monotonic()
        try:
            return self._run_steps(submission, existing, started, worker_id)
        except Exception as error:
            if is_transient(error):
                raise TransientFailure(f"{type(error).__name__}: {error}") from error
            raise

    def _announce(
        self,
        pipeline_id: str,
        status: RunStatus,
        step: str,
        message: str,
        started: float,
        kind: int = messages_pb2.PIPELINE_EVENT_KIND_RUN,
    ) -> None:
        self._emit(
            pipeline_event(
                pipeline_id, status, step, message, time.monotonic() - started, kind=kind
            )
        )

    def _emit(self, event: messages_pb2.PipelineEvent) -> None:
        """Keeps an event on the run's record, then publishes it: a follower who sees an event
        finds it on the record too."""
        try:
            self.store.append_event(event.pipeline_id, run_event_record(event))
        except NotFoundError:
            pass  # a refusal of a run that was never recorded
        except Exception:
            logger.warning("could not store an event for %s", event.pipeline_id, exc_info=True)
        try:
            self.events.publish(event)
        except Exception:  # events are a courtesy; the store is the record
            logger.warning("could not publish an event for %s", event.pipeline_id, exc_info=True)

    def _run_steps(
        self,
        submission: messages_pb2.SubmitPipeline,
        record: PipelineRun,
        started: float,
        worker_id: str,
    ) -> PipelineRun:
        pipeline_id = submission.pipeline_id
        definition = submission.definition
        tracking = PipelineTracking(
            self.tracking_uri, definition.experiment_config.experiment_name, pipeline_id
        )
        previous_run_id = record.mlflow_run_id
        parent_run_id = tracking.start(
            json_format.MessageToDict(definition), worker_id, previous_run_id
        )
        if previous_run_id:
            self._end_abandoned_attempt(tracking, record, worker_id)
        self.store.update_run(
            pipeline_id,
            status=RunStatus.RUNNING,
            started_at=utc_now(),
            attempts=record.attempts + 1,
            mlflow_experiment_id=tracking.experiment_id,
            mlflow_run_id=parent_run_id,
            error=None,
            worker_id=worker_id or None,
            heartbeat_at=utc_now(),
        )
        self._announce(pipeline_id, RunStatus.RUNNING, "", f"started on {worker_id}", started)
        context = PipelineContext(
            pipeline_id=pipeline_id,
            definition=definition,
            tracking=tracking,
            data_roots=self.data_roots,
            data_limits=self.data_limits,
            kaggle_downloader=self.kaggle_downloader,
            progress=StepProgress(pipeline_id, self._emit, started),
        )
        for stage in definition.pipeline:
            for item in stage.ml_steps:
                kind = item.WhichOneof("step")
                if kind is None:
                    continue
                failure = self._run_one_step(kind, getattr(item, kind), context, started)
                if failure is not None:
                    tracking.finish(succeeded=False)
                    return self._fail(pipeline_id, kind, failure, started)
        tracking.finish(succeeded=True)
        return self._succeed(context, started)

    def _end_abandoned_attempt(
        self, tracking: PipelineTracking, record: PipelineRun, worker_id: str
    ) -> None:
        """Ends the MLflow run of the attempt this one replaces, if it was left RUNNING."""
        assert record.mlflow_run_id is not None
        try:
            reason = tracking.end_abandoned_attempt(
                record.mlflow_run_id, worker_id, record.worker_id
            )
            if reason is not None:
                logger.warning(
                    "pipeline %s: MLflow run %s of the previous attempt marked FAILED: %s",
                    record.pipeline_id,
                    record.mlflow_run_id,
                    reason,
                )
        except Exception as error:  # a courtesy to MLflow readers; the new attempt goes on
            if is_transient(error):
                raise
            logger.warning(
                "pipeline %s: could not end the previous attempt's MLflow run %s",
                record.pipeline_id,
                record.mlflow_run_id,
                exc_info=True,
            )

    def _run_one_step(
        self, kind: str, spec: object, context: PipelineContext, started: float
    ) -> BaseException | None:
        """Runs a step and records it; returns the error that failed it, if any."""
        pipeline_id = context.pipeline_id
        step_started_at = utc_now()
        step_clock = time.monotonic()
        self.store.upsert_step(
            pipeline_id,
            StepRecord(name=kind, status=StepStatus.RUNNING, started_at=step_started_at),
        )
        context.progress.step = kind
        self._announce(
            pipeline_id,
            RunStatus.RUNNING,
            kind,
            f"{kind} started",
            started,
            messages_pb2.PIPELINE_EVENT_KIND_STEP_STARTED,
        )
        try:
            if self.before_step is not None:
                self.before_step(kind, context)
            findings = run_step(kind, spec, context)
        except Exception as error:  # StepFailure, or PyCaret/sklearn refusing the data
            if is_transient(error):
                raise
            if not isinstance(error, StepFailure):
                logger.exception("step %s of pipeline %s failed", kind, pipeline_id)
            self.store.upsert_step(
                pipeline_id,
                StepRecord(
                    name=kind,
                    status=StepStatus.FAILED,
                    started_at=step_started_at,
                    finished_at=utc_now(),
                    elapsed_seconds=time.monotonic() - step_clock,
                    message=f"{type(error).__name__}: {error}",
                ),
            )
            return error
        elapsed = time.monotonic() - step_clock
        self.store.upsert_step(
            pipeline_id,
            StepRecord(
                name=kind,
                status=StepStatus.SUCCEEDED,
                started_at=step_started_at,
                finished_at=utc_now(),
                elapsed_seconds=elapsed,
                findings=_jsonable(findings),
            ),
        )
        self._announce(
            pipeline_id,
            RunStatus.RUNNING,
            kind,
            f"{kind} done in {elapsed:.1f}s",
            started,
            messages_pb2.PIPELINE_EVENT_KIND_STEP_FINISHED,
        )
        return None

    def _fail(
        self, pipeline_id: str, step: str, error: BaseException, started: float
    ) -> PipelineRun:
        message = str(error) or type(error).__name__
        final = self.store.update_run(
            pipeline_id,
            status=RunStatus.FAILED,
            finished_at=utc_now(),
            error=RunError(step=step, error_type=type(error).__name__, message=message),
        )
        self._announce(pipeline_id, RunStatus.FAILED, step, f"{step} failed: {message}", started)
        return final

    def _succeed(self, context: PipelineContext, started: float) -> PipelineRun:
        training = context.training
        registered = context.registered
        changes: dict[str, object] = {"status": RunStatus.SUCCEEDED, "finished_at": utc_now()}
        if training is not None:
            changes.update(
                best_model=training.best_model_name,
                main_metric=training.metric_name,
                main_metric_value=training.metric_value,
            )
        if registered is not None:
            changes.update(
                registered_model_name=registered.name,
                registered_version=registered.version,
                alias=registered.alias,
            )
        if context.promotion is not None:
            changes["promotion"] = context.promotion
        final = self.store.update_run(context.pipeline_id, **changes)
        self._announce(
            context.pipeline_id, RunStatus.SUCCEEDED, "", outcome_summary(final), started
        )
        return final

    def mark_failed(self, pipeline_id: str, error_type: str, message: str) -> None:
        """Records a run that never started (invalid definition, retries exhausted)."""
        try:
            self.store.update_run(
                pipeline_id,
                status=RunStatus.FAILED,
                finished_at=utc_now(),
                error=RunError(step=None, error_type=error_type, message=message),
            )
        except NotFoundError:
            return
        self._announce(pipeline_id, RunStatus.FAILED, "", message, time.monotonic())


def outcome_summary(run: PipelineRun) -> str:
    """One line on how a run ended: what won, what was registered, where to look."""
    parts = [run.status.value]
    if run.best_model:
        score = "" if run.main_metric_value is None else f" {run.main_metric_value:.4f}"
        parts.append(f"best model {run.best_model} ({run.main_metric}{score})")
    if run.registered_version:
        alias = f" @{run.alias}" if run.alias else ""
        parts.append(f"registered {run.registered_model_name} v{run.registered_version}{alias}")
    if run.promotion is not None and not run.promotion.get("promote", True):
        parts.append(f"@{run.promotion.get('alias')} kept: {run.promotion.get('reason')}")
    if run.mlflow_experiment_id:
        parts.append(
            f"MLflow experiment '{run.experiment_name}' (id {run.mlflow_experiment_id}), "
            f"run {run.mlflow_run_id}"
        )
    if run.error is not None:
        parts.append(f"{run.error.step or 'run'}: {run.error.error_type}: {run.error.message}")
    return "; ".join(parts)


def _jsonable(value: object) -> object:
    """Findings as plain JSON types (numpy scalars and the like become floats or text)."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
