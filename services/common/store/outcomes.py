"""Outcomes: the true label or value of a logged prediction, attached after the fact.

An outcome names its prediction by what the caller already holds: `(request_id, row)` for an
online call (the request id is in every response) or `(batch_id, row)` for a batch job. The
records and the checks every backend shares live here, so backends only move data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from pydantic import AwareDatetime, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from mlplatform.common.store.records import _TimedRecord, utc_now

#: What a label may be: a class name or number, a regression target, a flag. Strict types, so
#: a label's type reaches the metrics as it was sent.
Label = StrictBool | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictStr


class OutcomeKind(StrEnum):
    """Which id an outcome's key is: an online request's or a batch job's."""

    REQUEST = "request"
    BATCH = "batch"


class OutcomeKey(NamedTuple):
    """The identity of one logged prediction, as an outcome names it."""

    kind: OutcomeKind
    key: str
    row_index: int

    def __str__(self) -> str:
        id_name = "request_id" if self.kind is OutcomeKind.REQUEST else "batch_id"
        return f"{id_name}={self.key!r} row={self.row_index}"


class Outcome(_TimedRecord):
    """The true label or value of the prediction at (`kind`, `key`, `row_index`)."""

    kind: OutcomeKind
    key: str = Field(min_length=1)
    row_index: int = Field(ge=0)
    label: Label
    recorded_at: AwareDatetime = Field(default_factory=utc_now)

    @property
    def identity(self) -> OutcomeKey:
        return OutcomeKey(self.kind, self.key, self.row_index)


class OutcomeReport(NamedTuple):
    """What `Store.record_outcomes` did: how many outcomes matched a logged prediction, how
    many of those replaced an earlier outcome, and the keys that matched none.

    Outcomes are stored only when every key matched (`stored` is then True), so a caller who
    fixes the unknown keys can resend the whole set without storing any of it twice.
    """

    matched: int
    replaced: int
    unknown: list[OutcomeKey]

    @property
    def stored(self) -> bool:
        return not self.unknown


class LabelledPrediction(NamedTuple):
    """A logged prediction beside its outcome: what live-quality metrics are computed from."""

    prediction: Any
    probabilities: dict[str, float] | None
    label: Any
    #: When the prediction was made (UTC): what quality over time is bucketed by.
    created_at: datetime


class DuplicateOutcomeError(ValueError):
    """One call names the same prediction twice; which label is meant is unknowable."""

    def __init__(self, key: OutcomeKey) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"outcome for {self.key} is given twice in one call"


def checked_outcomes(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """`outcomes` as a list, once each key is known to appear only once."""
    seen: set[OutcomeKey] = set()
    for outcome in outcomes:
        if outcome.identity in seen:
            raise DuplicateOutcomeError(outcome.identity)
        seen.add(outcome.identity)
    return list(outcomes)
