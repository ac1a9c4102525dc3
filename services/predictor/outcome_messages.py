"""`Predictor.RecordOutcomes` as plain functions: its messages to and from `outcome_intake`.

Kept apart from the servicer (the prediction transport): outcomes share nothing with
predicting but the port.
"""

from __future__ import annotations

from typing import Any

from mlplatform.common import outcome_intake
from mlplatform.common.store import OutcomeKind, Store
from mlplatform.v1 import predictor_pb2


def decode_outcome(outcome: predictor_pb2.Outcome) -> dict[str, Any]:
    """One Outcome message as the row `outcome_intake` reads (unset fields are absent).

    `row` has no presence in proto3: an outcome by prediction key, which uses no row, carries
    0 there, so only a row other than 0 reaches the intake (which refuses it)."""
    row: dict[str, Any] = {}
    key = outcome.WhichOneof("key")
    if key is not None:
        row[key] = getattr(outcome, key)
    if key != OutcomeKind.PREDICTION_KEY.column or outcome.row:
        row[outcome_intake.ROW_COLUMN] = outcome.row
    if outcome.model:
        row[outcome_intake.MODEL_COLUMN] = outcome.model
    label = outcome.WhichOneof("label")
    if label is not None:
        row[outcome_intake.LABEL_COLUMN] = getattr(outcome, label)
    return row


def record_outcomes(
    store: Store, request: predictor_pb2.RecordOutcomesRequest
) -> predictor_pb2.RecordOutcomesResponse:
    """Decode, record all or nothing, encode; InvalidInputError for any bad outcome."""
    outcomes = outcome_intake.outcomes_from_rows(decode_outcome(o) for o in request.outcomes)
    report = outcome_intake.record(store, outcomes)
    return predictor_pb2.RecordOutcomesResponse(
        matched=report.matched,
        labelled=report.labelled,
        replaced=report.replaced,
        reused_prediction_keys=outcome_intake.reused_key_names(report),
        reused_prediction_key_count=len(report.reused_keys),
    )
