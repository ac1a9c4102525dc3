"""Outcomes: the true label or value of a logged prediction, attached after the fact.

An outcome names its prediction by what the caller already holds: `(request_id, row)` for an
online call (the request id is in every response), `(batch_id, row)` for a batch job, or the
prediction key the caller sent in a key column, optionally narrowed to one model. A prediction
key is the caller's, so nothing stops it naming several predictions (the same customer scored
twice): every one of them gets the outcome, and the report says which keys did that. The
records and the checks every backend shares live here, so backends only move data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AwareDatetime,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from mlplatform.common.store.records import _TimedRecord, utc_now

#: What a label may be: a class name or number, a regression target, a flag. Strict types, so
#: a label's type reaches the metrics as it was sent.
Label = StrictBool | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictStr


class OutcomeKind(StrEnum):
    """Which id an outcome's key is: an online request's, a batch job's, or the caller's own
    prediction key."""

    REQUEST = "request"
    BATCH = "batch"
    PREDICTION_KEY = "prediction_key"

    @property
    def column(self) -> str:
        """The column (or field) callers give this kind of key in."""
        return {"request": "request_id", "batch": "batch_id"}.get(self.value, self.value)


class OutcomeKey(NamedTuple):
    """What an outcome names: one logged prediction by (request or batch id, row), or every
    prediction with a prediction key (of one model, when `model_name` is given)."""

    kind: OutcomeKind
    key: str
    row_index: int | None
    model_name: str | None = None

    def __str__(self) -> str:
        if self.kind is OutcomeKind.PREDICTION_KEY:
            model = "" if self.model_name is None else f" model={self.model_name!r}"
            return f"prediction_key={self.key!r}{model}"
        return f"{self.kind.column}={self.key!r} row={self.row_index}"


class Outcome(_TimedRecord):
    """The true label or value of what (`kind`, `key`, `row_index`, `model_name`) names."""

    kind: OutcomeKind
    key: str = Field(min_length=1)
    #: The row of the request or batch; None with a prediction key, which names rows itself.
    row_index: int | None = Field(default=None, ge=0)
    #: With a prediction key only: match that registered model's predictions only.
    model_name: str | None = Field(default=None, min_length=1)
    label: Label
    recorded_at: AwareDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> Outcome:
        if self.kind is OutcomeKind.PREDICTION_KEY:
            if self.row_index is not None:
                raise ValueError("row_index is not used with a prediction key; leave it out")
        else:
            if self.row_index is None:
                raise ValueError(f"row_index is required with {self.kind.column}")
            if self.model_name is not None:
                raise ValueError("model_name is used with a prediction key only")
        return self

    @property
    def identity(self) -> OutcomeKey:
        return OutcomeKey(self.kind, self.key, self.row_index, self.model_name)


class OutcomeReport(NamedTuple):
    """What `Store.record_outcomes` did: how many outcomes matched a logged prediction, the
    predictions they labelled and how many of those replaced an earlier outcome, the keys that
    matched none, and the prediction keys that matched several predictions.

    Outcomes are stored only when every key matched (`stored` is then True), so a caller who
    fixes the unknown keys can resend the whole set without storing any of it twice.
    """

    matched: int
    replaced: int
    unknown: list[OutcomeKey]
    #: Predictions given an outcome (0 when nothing was stored); more than `matched` when
    #: a prediction key names several predictions.
    labelled: int = 0
    #: Prediction keys that named more than one prediction, each of which got the outcome.
    reused_keys: tuple[OutcomeKey, ...] = ()

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
    """One call names the same prediction twice; which label is meant is unknowable.

    `other` is set when two different keys name one prediction (a prediction key and that
    prediction's request id and row, say)."""

    def __init__(self, key: OutcomeKey, other: OutcomeKey | None = None) -> None:
        super().__init__(key, other)
        self.key = key
        self.other = other

    def __str__(self) -> str:
        if self.other is not None and self.other != self.key:
            return f"outcomes for {self.other} and {self.key} name the same prediction in one call"
        return f"outcome for {self.key} is given twice in one call"


def checked_outcomes(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """`outcomes` as a list, once each key is known to appear only once."""
    seen: set[OutcomeKey] = set()
    for outcome in outcomes:
        if outcome.identity in seen:
            raise DuplicateOutcomeError(outcome.identity)
        seen.add(outcome.identity)
    return list(outcomes)


class OutcomeTally:
    """What a backend found while resolving a call's outcomes to predictions; `report()` is
    its OutcomeReport. `target` is whatever identifies one stored prediction in the backend,
    so two outcomes naming one prediction are caught, whichever keys they use."""

    def __init__(self, outcome_count: int) -> None:
        self.outcome_count = outcome_count
        self.unknown: list[OutcomeKey] = []
        self.reused: list[OutcomeKey] = []
        self.replaced = 0
        self._named_by: dict[Any, OutcomeKey] = {}

    def add(self, outcome: Outcome, targets: Sequence[tuple[Any, bool]]) -> None:
        """Count what `outcome` names: each (target, whether it has an outcome already)."""
        if not targets:
            self.unknown.append(outcome.identity)
            return
        if len(targets) > 1:
            self.reused.append(outcome.identity)
        for target, has_outcome in targets:
            earlier = self._named_by.setdefault(target, outcome.identity)
            if earlier != outcome.identity:
                raise DuplicateOutcomeError(outcome.identity, earlier)
            self.replaced += has_outcome

    def report(self) -> OutcomeReport:
        if self.unknown:
            return OutcomeReport(
                matched=self.outcome_count - len(self.unknown),
                replaced=0,
                unknown=self.unknown,
                reused_keys=tuple(self.reused),
            )
        return OutcomeReport(
            matched=self.outcome_count,
            replaced=self.replaced,
            unknown=[],
            labelled=len(self._named_by),
            reused_keys=tuple(self.reused),
        )
