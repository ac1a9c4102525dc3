"""How predictions and times map to SQLite rows and SQL text. Pure functions.

Times are fixed-width ISO text in UTC, so text order is time order and `ORDER BY created_at`
needs no conversion; free-form values are JSON text (see `json_values`).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from mlplatform.common.store import json_values
from mlplatform.common.store.records import PredictionRecord, to_store_time

#: The columns of `predictions` as schema 1 made them (migration 2 reads rows with them).
SCHEMA_1_PREDICTION_COLUMNS = (
    "model_name, model_version, source, request_id, batch_id, row_index, created_at, "
    "latency_ms, input_row, prediction, probabilities"
)
PREDICTION_COLUMNS = f"{SCHEMA_1_PREDICTION_COLUMNS}, prediction_key"
# No conflict target: a row clashing with either unique key (batch or request) is skipped.
INSERT_PREDICTION = (
    f"INSERT INTO predictions ({PREDICTION_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


def time_text(moment: datetime) -> str:
    """A UTC time as fixed-width ISO text, so text order is time order in SQL."""
    return to_store_time(moment).isoformat(timespec="milliseconds")


def prediction_row(record: PredictionRecord) -> tuple[Any, ...]:
    """The values of a predictions row, in PREDICTION_COLUMNS order."""
    return (
        record.model_name,
        record.model_version,
        record.source.value,
        record.request_id,
        record.batch_id,
        record.row_index,
        time_text(record.created_at),
        record.latency_ms,
        json_values.dumps(record.input_row, "input_row"),
        json_values.dumps(record.prediction, "prediction"),
        None
        if record.probabilities is None
        else json_values.dumps(record.probabilities, "probabilities"),
        record.prediction_key,
    )


def prediction_from_row(row: sqlite3.Row) -> PredictionRecord:
    """The record a predictions row (selected as PREDICTION_COLUMNS) holds."""
    probabilities = row["probabilities"]
    return PredictionRecord(
        model_name=row["model_name"],
        model_version=row["model_version"],
        source=row["source"],
        request_id=row["request_id"],
        batch_id=row["batch_id"],
        row_index=row["row_index"],
        created_at=datetime.fromisoformat(row["created_at"]),
        latency_ms=row["latency_ms"],
        input_row=json_values.loads(row["input_row"]),
        prediction=json_values.loads(row["prediction"]),
        probabilities=None if probabilities is None else json_values.loads(probabilities),
        prediction_key=row["prediction_key"],
    )


def build_prediction_where(
    model_name: str | None = None,
    model_version: str | None = None,
    batch_id: str | None = None,
    request_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    table: str | None = None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (empty when there is no filter) and its parameters; with `table`,
    columns are qualified by that table name or alias."""
    prefix = f"{table}." if table else ""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("model_name", model_name),
        ("model_version", None if model_version is None else str(model_version)),
        ("batch_id", batch_id),
        ("request_id", request_id),
    ):
        if value is not None:
            clauses.append(f"{prefix}{column} = ?")
            params.append(value)
    if since is not None:
        clauses.append(f"{prefix}created_at >= ?")
        params.append(time_text(since))
    if until is not None:
        clauses.append(f"{prefix}created_at < ?")
        params.append(time_text(until))
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params
