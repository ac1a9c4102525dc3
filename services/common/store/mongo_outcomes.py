"""Outcomes in the MongoDB store: kept on the prediction document they belong to.

A prediction document gains `outcome` (label and time) and `has_outcome: true`, so counting
and reading labelled predictions are one query each on the predictions' own model, version
and time index; no join is needed. Every key is checked before anything is written, so a
call naming an unknown key stores nothing. An outcome by prediction key goes on every
document with that key (of its model, when it names one).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mlplatform.common.extras import missing_extra

try:
    from pymongo import DESCENDING
    from pymongo.collection import Collection
except ImportError as error:
    raise missing_extra("mongo", error) from error

from mlplatform.common.store.mongo_queries import build_prediction_query
from mlplatform.common.store.outcomes import (
    LabelledPrediction,
    Outcome,
    OutcomeKind,
    OutcomeReport,
    OutcomeTally,
    checked_outcomes,
)
from mlplatform.common.store.records import to_store_time


def _prediction_filter(outcome: Outcome) -> dict[str, Any]:
    if outcome.kind is OutcomeKind.PREDICTION_KEY:
        if outcome.model_name is None:
            return {"prediction_key": outcome.key}
        return {"prediction_key": outcome.key, "model_name": outcome.model_name}
    if outcome.kind is OutcomeKind.BATCH:
        return {"batch_id": outcome.key, "row_index": outcome.row_index}
    # Batch rows may carry the request id of the call that started them; online rows only.
    return {"request_id": outcome.key, "row_index": outcome.row_index, "source": "online"}


def record_outcomes(predictions: Collection, outcomes: Sequence[Outcome]) -> OutcomeReport:
    outcomes = checked_outcomes(outcomes)
    tally = OutcomeTally(len(outcomes))
    for outcome in outcomes:
        found = predictions.find(_prediction_filter(outcome), {"_id": 1, "has_outcome": 1})
        tally.add(
            outcome, [(document["_id"], bool(document.get("has_outcome"))) for document in found]
        )
    report = tally.report()
    if not report.stored:
        return report
    for outcome in outcomes:
        predictions.update_many(
            _prediction_filter(outcome),
            {
                "$set": {
                    "has_outcome": True,
                    "outcome": {"label": outcome.label, "recorded_at": outcome.recorded_at},
                }
            },
        )
    return report


def labelled_query(
    model_name: str,
    model_version: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    query = build_prediction_query(model_name, model_version, None, None, since, until)
    return {**query, "has_outcome": True}


def labelled_predictions(
    predictions: Collection, query: dict[str, Any], limit: int
) -> list[LabelledPrediction]:
    cursor = predictions.find(query).sort([("created_at", DESCENDING)]).limit(limit)
    return [
        LabelledPrediction(
            prediction=document.get("prediction"),
            probabilities=document.get("probabilities"),
            label=document["outcome"]["label"],
            created_at=to_store_time(document["created_at"]),
        )
        for document in cursor
    ]
