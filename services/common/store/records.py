"""The records every store backend keeps, validated once here so backends only move data.

Timestamps are timezone-aware UTC with millisecond precision: MongoDB (BSON dates) keeps
milliseconds, so every backend rounds the same way and a record reads back equal to what was
written, whichever backend holds it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

RecordT = TypeVar("RecordT")
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def utc_now() -> datetime:
    """Now, as the stores keep it: UTC, milliseconds."""
    return to_store_time(datetime.now(UTC))


def to_store_time(moment: datetime) -> datetime:
    """`moment` in UTC truncated to milliseconds; naive datetimes are taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class RunStatus(StrEnum):
    """Where a pipeline run is; only `succeeded` and `failed` are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StepStatus(StrEnum):
    """Where one step of a pipeline run is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class BatchStatus(StrEnum):
    """Where a batch prediction request is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PredictionSource(StrEnum):
    """Which path produced a prediction: the gRPC/REST predictor or the batch inferer."""

    ONLINE = "online"
    BATCH = "batch"


class _Record(BaseModel):
    """Common config: unknown fields are errors (a typo must not silently drop data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _TimedRecord(_Record):
    """Normalises every datetime field to the store's UTC-milliseconds form."""

    @field_validator("*", mode="after")
    @classmethod
    def _normalise_datetimes(cls, value: Any) -> Any:
        return to_store_time(value) if isinstance(value, datetime) else value


def _version_as_text(value: Any) -> Any:
    """MLflow versions are strings ("3"); accept the int a caller naturally has at hand."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class StepRecord(_TimedRecord):
    """One step of a pipeline run, with what it found (row counts, chosen model, metrics...)."""

    name: str = Field(min_length=1)
    status: StepStatus = StepStatus.PENDING
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    elapsed_seconds: float | None = Field(default=None, ge=0)
    findings: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None


class RunEvent(_TimedRecord):
    """One progress event of a run, as the trainer published it (`PipelineEvent`)."""

    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    kind: str = "run"
    status: RunStatus = RunStatus.RUNNING
    step: str | None = None
    message: str = ""
    elapsed_seconds: float = Field(default=0.0, ge=0)
    #: Model events: stage, model name, estimator id, index, total, metric, score.
    model: dict[str, Any] | None = None
    phase: str | None = None


class RunError(_Record):
    """Why a run failed: the step it failed in, the exception type and its message."""

    step: str | None = None
    error_type: str
    message: str


class PipelineRun(_TimedRecord):
    """A submitted pipeline: created at submission, updated by the trainer step by step."""

    pipeline_id: str = Field(min_length=1)
    status: RunStatus = RunStatus.QUEUED
    definition: dict[str, Any] = Field(default_factory=dict)
    experiment_name: str | None = None
    model_name: str | None = None
    submitted_by: str | None = None
    created_at: AwareDatetime = Field(default_factory=utc_now)
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    attempts: int = Field(default=0, ge=0)
    steps: list[StepRecord] = Field(default_factory=list)
    mlflow_experiment_id: str | None = None
    mlflow_run_id: str | None = None
    best_model: str | None = None
    main_metric: str | None = None
    main_metric_value: float | None = None
    registered_model_name: str | None = None
    registered_version: str | None = None
    alias: str | None = None
    error: RunError | None = None
    #: Progress events in the order they happened (the newest `MAX_RUN_EVENTS` are kept).
    events: list[RunEvent] = Field(default_factory=list)
    #: The champion/challenger decision of `register_model` (scores, outcome, reason).
    promotion: dict[str, Any] | None = None
    #: The trainer running it, and when that trainer last said it is alive: a run lease, so
    #: a redelivered message is not trained twice while its worker is still at it.
    worker_id: str | None = None
    heartbeat_at: AwareDatetime | None = None

    _coerce_version = field_validator("registered_version", mode="before")(_version_as_text)

    @field_validator("steps")
    @classmethod
    def _step_names_unique(cls, steps: list[StepRecord]) -> list[StepRecord]:
        # Steps are updated by name, so a duplicate name would make an update ambiguous.
        names = [step.name for step in steps]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"step names must be unique; repeated: {', '.join(duplicates)}")
        return steps

    def step(self, name: str) -> StepRecord | None:
        """The step called `name`, if the run has one."""
        return next((step for step in self.steps if step.name == name), None)


class PredictionRecord(_TimedRecord):
    """One predicted row: enough to analyse a model later and tell which version served when.

    Online rows are identified by (request_id, row_index), batch rows by (batch_id, row_index);
    stores ignore a second write of the same identity, so a redelivered message adds no rows.
    `prediction_key` is the caller's own key for the row, when it sent a key column: outcomes
    may name the prediction by it. Nothing makes it unique; see `outcomes`.
    """

    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    input_row: dict[str, Any]
    prediction: Any
    probabilities: dict[str, FiniteFloat] | None = None
    source: PredictionSource
    request_id: str | None = None
    batch_id: str | None = None
    row_index: int = Field(ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    created_at: AwareDatetime = Field(default_factory=utc_now)
    prediction_key: str | None = Field(default=None, min_length=1)

    _coerce_version = field_validator("model_version", mode="before")(_version_as_text)

    @model_validator(mode="after")
    def _identity_matches_source(self) -> PredictionRecord:
        if self.source is PredictionSource.BATCH and not self.batch_id:
            raise ValueError("batch_id is required when source is 'batch'")
        if self.source is PredictionSource.ONLINE:
            if not self.request_id:
                raise ValueError("request_id is required when source is 'online'")
            if self.batch_id is not None:
                raise ValueError("batch_id must be empty when source is 'online'")
        return self


class BatchRecord(_TimedRecord):
    """A batch prediction request split into parts; each part is counted once, however often
    its message is delivered."""

    batch_id: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    model_version: str | None = None
    part_count: int = Field(ge=1)
    parts_done: frozenset[int] = frozenset()
    rows_total: int | None = Field(default=None, ge=0)
    rows_done: int = Field(default=0, ge=0)
    status: BatchStatus = BatchStatus.PENDING
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)
    error: str | None = None
    #: Which path ran it: "queue" (the RabbitMQ inferers; None in records from before the
    #: field existed) or "spark" (`mlp batch spark`, one part: the whole job).
    engine: str | None = None
    input_uri: str | None = None
    output_uri: str | None = None
    duration_seconds: float | None = Field(default=None, ge=0)
    #: Rows of this batch written to the prediction log (all, or a sample).
    rows_logged: int | None = Field(default=None, ge=0)
    #: What the predictions look like: counts per class, or a regressor's quantiles.
    prediction_summary: dict[str, Any] | None = None

    _coerce_version = field_validator("model_version", mode="before")(_version_as_text)

    @field_serializer("parts_done")
    def _parts_in_order(self, parts_done: frozenset[int]) -> list[int]:
        return sorted(parts_done)

    @model_validator(mode="after")
    def _parts_in_range(self) -> BatchRecord:
        out_of_range = sorted(part for part in self.parts_done if not 0 <= part < self.part_count)
        if out_of_range:
            raise ValueError(
                f"parts_done holds parts outside 0..{self.part_count - 1}: {out_of_range}"
            )
        return self


class DeadLetter(_TimedRecord):
    """A message that could not be decoded or validated, kept with the reason it was refused."""

    model_config = ConfigDict(ser_json_bytes="base64")

    queue: str = Field(min_length=1)
    message_id: str | None = None
    message_type: str | None = None
    reason: str
    body: bytes = b""
    recorded_at: AwareDatetime = Field(default_factory=utc_now)


class ServingRecord(_TimedRecord):
    """A span of time during which a predictor served one version of a model under an alias."""

    model_name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    alias: str | None = None
    started_at: AwareDatetime = Field(default_factory=utc_now)
    ended_at: AwareDatetime | None = None

    _coerce_version = field_validator("version", mode="before")(_version_as_text)


class Created(NamedTuple, Generic[RecordT]):
    """What an idempotent create returns: the stored record and whether this call created it."""

    record: RecordT
    created: bool
