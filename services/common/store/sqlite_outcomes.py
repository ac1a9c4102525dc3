"""Outcomes in the SQLite store: the `outcomes` table and the joins that read it back.

An outcome row is keyed by (kind, key, row_index) and joins to `predictions` (online, by
request id) or to `batch_rows` (batch, by batch id). Counting and reading labelled rows are
SQL joins filtered by the predictions' own model, version and time, so the store aggregates
and only the rows asked for leave it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from mlplatform.common.store import json_values
from mlplatform.common.store.outcomes import (
    LabelledPrediction,
    Outcome,
    OutcomeKind,
    OutcomeReport,
    checked_outcomes,
)
from mlplatform.common.store.sqlite_rows import build_prediction_where, time_text

Read = Callable[[str, list[Any]], list[sqlite3.Row]]

OUTCOMES_TABLE = (
    """
    CREATE TABLE outcomes (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        row_index INTEGER NOT NULL,
        label TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (kind, key, row_index)
    ) WITHOUT ROWID
    """,
)

_PREDICTION_EXISTS = {
    OutcomeKind.REQUEST: "SELECT 1 FROM predictions WHERE request_id = ? AND row_index = ?",
    OutcomeKind.BATCH: "SELECT 1 FROM batch_rows WHERE batch_id = ? AND row_index = ?",
}
_OUTCOME_EXISTS = "SELECT 1 FROM outcomes WHERE kind = ? AND key = ? AND row_index = ?"
_UPSERT_OUTCOME = (
    "INSERT INTO outcomes (kind, key, row_index, label, recorded_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, key, row_index) DO UPDATE SET "
    "label = excluded.label, recorded_at = excluded.recorded_at"
)
_ONLINE_JOIN = (
    "FROM predictions AS p JOIN outcomes AS o ON o.kind = 'request' "
    "AND o.key = p.request_id AND o.row_index = p.row_index"
)
_BATCH_JOIN = (
    "FROM batch_parts AS p JOIN batch_rows AS r ON r.batch_id = p.batch_id "
    "AND r.row_index BETWEEN p.first_row AND p.last_row AND r.part_id = p.id "
    "JOIN outcomes AS o ON o.kind = 'batch' AND o.key = r.batch_id AND o.row_index = r.row_index"
)


def record_outcomes(connection: sqlite3.Connection, outcomes: Sequence[Outcome]) -> OutcomeReport:
    """Store every outcome, inside the caller's write transaction, when every key matches a
    logged prediction; otherwise store none and report the unknown keys."""
    outcomes = checked_outcomes(outcomes)
    unknown, replaced = [], 0
    for outcome in outcomes:
        key = (outcome.key, outcome.row_index)
        if connection.execute(_PREDICTION_EXISTS[outcome.kind], key).fetchone() is None:
            unknown.append(outcome.identity)
        elif connection.execute(_OUTCOME_EXISTS, (outcome.kind.value, *key)).fetchone():
            replaced += 1
    if unknown:
        return OutcomeReport(matched=len(outcomes) - len(unknown), replaced=0, unknown=unknown)
    connection.executemany(
        _UPSERT_OUTCOME,
        [
            (
                outcome.kind.value,
                outcome.key,
                outcome.row_index,
                json_values.dumps(outcome.label, "label"),
                time_text(outcome.recorded_at),
            )
            for outcome in outcomes
        ],
    )
    return OutcomeReport(matched=len(outcomes), replaced=replaced, unknown=[])


def count_labelled(
    read: Read,
    model_name: str,
    model_version: str | None,
    since: datetime | None,
    until: datetime | None,
) -> int:
    where, params = build_prediction_where(model_name, model_version, None, None, since, until, "p")
    online = read(f"SELECT COUNT(*) {_ONLINE_JOIN}{where}", params)
    batch = read(f"SELECT COUNT(*) {_BATCH_JOIN}{where}", params)
    return int(online[0][0]) + int(batch[0][0])


def labelled_predictions(
    read: Read,
    model_name: str,
    model_version: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[LabelledPrediction]:
    where, params = build_prediction_where(model_name, model_version, None, None, since, until, "p")
    online = read(
        f"SELECT p.created_at, p.prediction, p.probabilities, NULL AS class_names, o.label "
        f"{_ONLINE_JOIN}{where} ORDER BY p.created_at DESC LIMIT ?",
        [*params, limit],
    )
    batch = read(
        f"SELECT p.created_at, r.prediction, r.probabilities, p.class_names, o.label "
        f"{_BATCH_JOIN}{where} ORDER BY p.created_at DESC LIMIT ?",
        [*params, limit],
    )
    newest = sorted([*online, *batch], key=lambda row: row["created_at"], reverse=True)[:limit]
    return [_labelled(row) for row in newest]


def _labelled(row: sqlite3.Row) -> LabelledPrediction:
    probabilities = None
    if row["probabilities"] is not None:
        values = json_values.loads(row["probabilities"])
        if row["class_names"] is not None:  # batch rows keep values, their part the names
            values = dict(zip(json_values.loads(row["class_names"]), values, strict=True))
        probabilities = values
    return LabelledPrediction(
        prediction=json_values.loads(row["prediction"]),
        probabilities=probabilities,
        label=json_values.loads(row["label"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )
