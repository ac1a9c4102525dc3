"""How records change: partial updates, step upserts, batch parts. Pure functions.

Both backends read a record, apply one of these and write the result back inside their own
atomic section (a SQLite write transaction, a MongoDB compare-and-swap), so the rules live once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlplatform.common.store.base import InvalidRecordError
from mlplatform.common.store.records import (
    BatchRecord,
    BatchStatus,
    PipelineRun,
    RunEvent,
    RunStatus,
    ServingRecord,
    StepRecord,
    to_store_time,
    utc_now,
)

ModelT = TypeVar("ModelT", bound=BaseModel)
StatusT = TypeVar("StatusT", RunStatus, BatchStatus)

RUN_KEY_FIELDS = frozenset({"pipeline_id"})
BATCH_KEY_FIELDS = frozenset({"batch_id"})


def invalid_record_error(error: ValidationError) -> InvalidRecordError:
    """The first problem pydantic found, as a store error naming its field."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or error.title
    return InvalidRecordError(field, first["msg"])


def validated(model_type: type[ModelT], data: Mapping[str, Any]) -> ModelT:
    """`model_type` built from `data`, with validation failures as InvalidRecordError."""
    try:
        return model_type.model_validate(data)
    except ValidationError as error:
        raise invalid_record_error(error) from error


def apply_changes(record: ModelT, changes: Mapping[str, Any], key_fields: frozenset[str]) -> ModelT:
    """`record` with only `changes` replaced, validated as a whole.

    The key fields cannot change: the record would silently move to another id.
    """
    model_type = type(record)
    for field in changes:
        if field not in model_type.model_fields:
            raise InvalidRecordError(field, f"{model_type.__name__} has no field {field!r}")
        if field in key_fields:
            raise InvalidRecordError(field, "is the record's key and cannot be changed")
    return validated(model_type, {**record.model_dump(), **changes})


def with_step(run: PipelineRun, step: StepRecord) -> PipelineRun:
    """`run` with `step` replacing the step of the same name, or appended after the others."""
    steps = list(run.steps)
    position = next((index for index, known in enumerate(steps) if known.name == step.name), None)
    if position is None:
        steps.append(step)
    else:
        steps[position] = step
    return validated(PipelineRun, {**run.model_dump(), "steps": steps})


#: Events kept per run: a long tuning run emits one per model, and the record stays small.
MAX_RUN_EVENTS = 1000


def with_event(run: PipelineRun, event: RunEvent) -> PipelineRun:
    """`run` with `event` appended; the oldest events go once there are `MAX_RUN_EVENTS`."""
    events = [*run.events, event][-MAX_RUN_EVENTS:]
    return validated(PipelineRun, {**run.model_dump(), "events": events})


def with_part_done(
    batch: BatchRecord, part_index: int, rows: int, now: datetime
) -> BatchRecord | None:
    """`batch` with part `part_index` counted, or None when that part was already counted."""
    if not 0 <= part_index < batch.part_count:
        raise InvalidRecordError(
            "part_index", f"{part_index} is outside 0..{batch.part_count - 1} for this batch"
        )
    if rows < 0:
        raise InvalidRecordError("rows", f"must be zero or more, got {rows}")
    if part_index in batch.parts_done:
        return None
    parts_done = batch.parts_done | {part_index}
    if batch.status is BatchStatus.FAILED:
        status = BatchStatus.FAILED  # a late part does not revive a batch that already failed
    elif len(parts_done) == batch.part_count:
        status = BatchStatus.SUCCEEDED
    else:
        status = BatchStatus.RUNNING
    return validated(
        BatchRecord,
        {
            **batch.model_dump(),
            "parts_done": parts_done,
            "rows_done": batch.rows_done + rows,
            "status": status,
            "updated_at": now,
        },
    )


def check_limit(limit: int) -> int:
    """`limit` if it is a usable row limit (0 means no rows, not "unlimited")."""
    if limit < 0:
        raise InvalidRecordError("limit", f"must be zero or more, got {limit}")
    return limit


def status_value(status: object, status_type: type[StatusT]) -> str:
    """`status` as the stored text of `status_type`; an unknown status is an error naming the
    field and the accepted values."""
    try:
        return status_type(status).value
    except ValueError as error:
        accepted = ", ".join(member.value for member in status_type)
        raise InvalidRecordError("status", f"{status!r} is not one of {accepted}") from error


def store_time_or_none(moment: datetime | None) -> datetime | None:
    """A query bound in the stores' time form; naive datetimes are taken to be UTC."""
    return None if moment is None else to_store_time(moment)


def new_serving_span(
    model_name: str, version: str, alias: str | None, started_at: datetime | None
) -> ServingRecord:
    """The validated span that `record_serving` opens (starting now when not given)."""
    return validated(
        ServingRecord,
        {
            "model_name": model_name,
            "version": version,
            "alias": alias,
            "started_at": started_at or utc_now(),
        },
    )
