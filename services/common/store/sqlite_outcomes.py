"""Outcomes in the SQLite store: the `outcomes` table and the joins that read it back.

An outcome row is keyed by (kind, key, row_index) and joins to `predictions` (online, by
request id) or to `batch_rows` (batch, by batch id); an outcome given by prediction key is
stored under the id and row of each prediction carrying that key. Counting and reading
labelled rows are SQL joins filtered by the predictions' own model, version and time, so the
store aggregates and only the rows asked for leave it.
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
    OutcomeTally,
    checked_outcomes,
)
from mlplatform.common.store.sqlite_batch_rows import decoded_values
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

# What each kind of key names, with whether it has an outcome already: (kind, id, row, has).
_ONLINE_TARGETS = (
    "SELECT 'request', p.request_id, p.row_index, o.key IS NOT NULL FROM predictions AS p "
    "LEFT JOIN outcomes AS o ON o.kind = 'request' AND o.key = p.request_id "
    "AND o.row_index = p.row_index WHERE "
)
_BATCH_TARGETS = (
    "SELECT 'batch', r.batch_id, r.row_index, o.key IS NOT NULL FROM batch_rows AS r "
    "LEFT JOIN outcomes AS o ON o.kind = 'batch' AND o.key = r.batch_id "
    "AND o.row_index = r.row_index WHERE "
)
# Batch rows keep their model on their part; the key index finds the rows, the part's primary
# key their model.
_BATCH_TARGETS_OF_MODEL = _BATCH_TARGETS.replace(
    "LEFT JOIN", "JOIN batch_parts AS part ON part.id = r.part_id LEFT JOIN", 1
)
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


def _targets(connection: sqlite3.Connection, outcome: Outcome) -> list[sqlite3.Row]:
    """The stored predictions `outcome` names, as (kind, id, row, has an outcome) rows."""
    if outcome.kind is OutcomeKind.REQUEST:
        return connection.execute(
            f"{_ONLINE_TARGETS}p.request_id = ? AND p.row_index = ?",
            (outcome.key, outcome.row_index),
        ).fetchall()
    if outcome.kind is OutcomeKind.BATCH:
        return connection.execute(
            f"{_BATCH_TARGETS}r.batch_id = ? AND r.row_index = ?", (outcome.key, outcome.row_index)
        ).fetchall()
    if outcome.model_name is None:
        online = f"{_ONLINE_TARGETS}p.prediction_key = ?"
        batch = f"{_BATCH_TARGETS}r.prediction_key = ?"
        params: tuple[str, ...] = (outcome.key,)
    else:
        online = f"{_ONLINE_TARGETS}p.prediction_key = ? AND p.model_name = ?"
        batch = f"{_BATCH_TARGETS_OF_MODEL}r.prediction_key = ? AND part.model_name = ?"
        params = (outcome.key, outcome.model_name)
    return [
        *connection.execute(online, params).fetchall(),
        *connection.execute(batch, params).fetchall(),
    ]


def record_outcomes(connection: sqlite3.Connection, outcomes: Sequence[Outcome]) -> OutcomeReport:
    """Store every outcome, inside the caller's write transaction, when every key matches a
    logged prediction; otherwise store none and report the unknown keys. An outcome by
    prediction key is stored under each prediction's own (request or batch id, row), so every
    way of naming a prediction reads and replaces the same outcome."""
    outcomes = checked_outcomes(outcomes)
    tally = OutcomeTally(len(outcomes))
    rows: list[tuple[Any, ...]] = []
    for outcome in outcomes:
        targets = _targets(connection, outcome)
        tally.add(outcome, [((kind, key, row), bool(has)) for kind, key, row, has in targets])
        label = json_values.dumps(outcome.label, "label")
        recorded_at = time_text(outcome.recorded_at)
        rows.extend((kind, key, row, label, recorded_at) for kind, key, row, _has in targets)
    report = tally.report()
    if report.stored:
        connection.executemany(_UPSERT_OUTCOME, rows)
    return report


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
        values = decoded_values(row["probabilities"])  # JSON text, or a batch row's BLOB
        if row["class_names"] is not None:  # batch rows keep values, their part the names
            values = dict(zip(json_values.loads(row["class_names"]), values, strict=True))
        probabilities = values
    return LabelledPrediction(
        prediction=json_values.loads(row["prediction"]),
        probabilities=probabilities,
        label=json_values.loads(row["label"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )
