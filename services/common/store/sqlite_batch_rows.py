"""How batch predictions map to the SQLite store's two batch tables. Pure functions and SQL.

The batch inferer writes rows by the hundred thousand, and a predictions row that repeats
everything (model, version, batch id, time, the input column names in every row's JSON) with
five indexes cost about 24 µs a row: more than a fast model spends predicting it. So a stored
chunk is a *part*: what every row of the chunk shares lives once in `batch_parts` (model,
version, time, latency, the input column names, the class names), and each `batch_rows` row
holds only its key, its part, its input values in the part's column order, its prediction, and
its probabilities as a JSON array in the part's class order.

Input values are a JSON array, or, when every input column is a double (the usual batch), the
row's doubles as one BLOB of 8-byte little-endian floats: encoding is then a slice rather than
JSON, and the rows take less than half the disk. Either way a value that is not finite reads
back as None, as JSON has it.

The one unique key on rows, (batch_id, row_index), makes writes idempotent; the query indexes
are on the parts, which are few. Reading a row back gives exactly the `PredictionRecord` that
was written. A row sent with a key column also holds its prediction key (NULL otherwise).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlplatform.common.store import json_values
from mlplatform.common.store.batch_predictions import BatchPredictions
from mlplatform.common.store.records import PredictionRecord, PredictionSource
from mlplatform.common.store.sqlite_rows import (
    SCHEMA_1_PREDICTION_COLUMNS,
    prediction_from_row,
    time_text,
)

_PART_COLUMNS = (
    "batch_id, model_name, model_version, request_id, created_at, latency_ms, "
    "first_row, last_row, row_count, input_columns, class_names"
)
INSERT_PART = f"INSERT INTO batch_parts ({_PART_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
INSERT_ROW = (
    "INSERT INTO batch_rows (batch_id, row_index, part_id, input_values, prediction, "
    "probabilities) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
# Rows sent with a key column; the unkeyed insert above is also what schema 2 (migration 2's
# own data step) understands.
INSERT_KEYED_ROW = (
    "INSERT INTO batch_rows (batch_id, row_index, part_id, input_values, prediction, "
    "probabilities, prediction_key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
# A row belongs to the part that wrote it; the range lets the join use the rows' primary key.
SELECT_ROWS = (
    "SELECT p.model_name, p.model_version, p.request_id, p.batch_id, r.row_index, "
    "p.created_at, p.latency_ms, p.input_columns, r.input_values, r.prediction, "
    "p.class_names, r.probabilities, r.prediction_key, p.id AS part_id "
    "FROM batch_parts AS p JOIN batch_rows AS r ON r.batch_id = p.batch_id "
    "AND r.row_index BETWEEN p.first_row AND p.last_row AND r.part_id = p.id"
)


#: How an all-double row's input values are stored: 8-byte little-endian floats.
_DOUBLES = "<f8"
_DOUBLE_BYTES = 8


@dataclass(frozen=True)
class EncodedPart:
    """One part, encoded before the write lock is taken: `header` in INSERT_PART order, and
    per row (row_index, input values, prediction, probabilities), each JSON text (input values
    may be a BLOB of doubles), and the rows' prediction keys when the part has them."""

    batch_id: str
    header: tuple[Any, ...]
    row_values: list[tuple[int, str | bytes, str, str | None]]
    prediction_keys: list[str | None] | None = None


def _input_values(batch: BatchPredictions) -> tuple[list[str], list[str] | list[bytes]]:
    """The input column names, and each row's values: a BLOB of doubles when every column is
    float64 (see the module doc), else a JSON array."""
    import numpy as np

    inputs = batch.inputs
    names = [str(name) for name in inputs.columns]
    if names and len(inputs) and all(dtype == np.float64 for dtype in inputs.dtypes):
        raw = np.ascontiguousarray(inputs.to_numpy(), dtype=_DOUBLES).tobytes()
        width = _DOUBLE_BYTES * len(names)
        return names, [raw[start : start + width] for start in range(0, len(raw), width)]
    columns = batch.input_columns()
    if not columns:
        return names, ["[]"] * len(batch)
    return names, json_values.dumps_each(zip(*columns.values(), strict=True), "input_row")


def _decoded_inputs(stored: str | bytes) -> list[Any]:
    """A row's input values as `_input_values` stored them."""
    if not isinstance(stored, bytes):
        return json_values.loads(stored)
    import numpy as np

    values = np.frombuffer(stored, dtype=_DOUBLES)
    if np.isfinite(values).all():
        return values.tolist()
    return [value if math.isfinite(value) else None for value in values.tolist()]


def _prediction_values(batch: BatchPredictions) -> list[str]:
    """Each row's prediction as JSON text; one-dimensional float64, integer or bool
    predictions are encoded as one array and split, with the same text."""
    import numpy as np

    predictions = batch.predictions
    dtype = predictions.dtype
    if predictions.ndim == 1 and len(predictions) and (dtype.kind in "iub" or dtype == np.float64):
        return json_values.dumps(predictions, "prediction")[1:-1].split(",")
    return json_values.dumps_each(batch.prediction_values(), "prediction")


def encode_batch(batch: BatchPredictions) -> EncodedPart:
    """A chunk of batch predictions as one part, column by column, with no record per row."""
    names, inputs = _input_values(batch)
    predictions = _prediction_values(batch)
    if batch.probabilities is None:
        probabilities: list[str | None] = [None] * len(batch)
        class_names = None
    else:
        probabilities = json_values.dumps_each(batch.probabilities.tolist(), "probabilities")
        class_names = json_values.dumps(list(batch.class_names), "class_names")
    header = (
        batch.batch_id,
        batch.model_name,
        batch.model_version,
        None,  # request_id
        time_text(batch.created_at),
        batch.latency_ms,
        batch.row_offset,
        batch.row_offset + len(batch) - 1,
        json_values.dumps(names, "input_row"),
        class_names,
    )
    rows = list(zip(batch.row_indexes, inputs, predictions, probabilities, strict=True))
    keys = None if batch.prediction_keys is None else list(batch.prediction_keys)
    return EncodedPart(batch.batch_id, header, rows, keys)


def encode_record(record: PredictionRecord) -> EncodedPart:
    """One batch-source record as a part of one row (the per-record path, rarely used)."""
    if record.batch_id is None:  # the record's own validator forbids this
        raise ValueError("a batch prediction record needs a batch_id")
    probabilities = record.probabilities
    header = (
        record.batch_id,
        record.model_name,
        record.model_version,
        record.request_id,
        time_text(record.created_at),
        record.latency_ms,
        record.row_index,
        record.row_index,
        json_values.dumps(list(record.input_row), "input_row"),
        None if probabilities is None else json_values.dumps(list(probabilities), "probabilities"),
    )
    row = (
        record.row_index,
        json_values.dumps(list(record.input_row.values()), "input_row"),
        json_values.dumps(record.prediction, "prediction"),
        None
        if probabilities is None
        else json_values.dumps(list(probabilities.values()), "probabilities"),
    )
    keys = None if record.prediction_key is None else [record.prediction_key]
    return EncodedPart(record.batch_id, header, [row], keys)


def write_part(connection: sqlite3.Connection, part: EncodedPart) -> int:
    """Writes a part inside the caller's write transaction; returns the rows it added (rows
    already stored under their key are skipped, and a part that adds none is not kept)."""
    if not part.row_values:
        return 0
    part_id = connection.execute(INSERT_PART, part.header).lastrowid
    rows: Iterable[tuple[Any, ...]] = (
        (part.batch_id, row_index, part_id, inputs, prediction, probabilities)
        for row_index, inputs, prediction, probabilities in part.row_values
    )
    insert = INSERT_ROW
    if part.prediction_keys is not None:
        insert = INSERT_KEYED_ROW
        rows = ((*row, key) for row, key in zip(rows, part.prediction_keys, strict=True))
    added = connection.executemany(insert, rows).rowcount
    if added:
        connection.execute("UPDATE batch_parts SET row_count = ? WHERE id = ?", (added, part_id))
    else:
        connection.execute("DELETE FROM batch_parts WHERE id = ?", (part_id,))
    return added


def records_from_rows(rows: Iterable[sqlite3.Row]) -> Iterator[PredictionRecord]:
    """The records that SELECT_ROWS rows hold. What a part's rows share (names, time, model)
    is decoded once per part, and the records are built without validation: the store
    checked every value when it was written, and reading 1,000 rows would otherwise spend
    most of its time validating them again."""
    parts: dict[int, tuple[dict[str, Any], list[str], list[str] | None]] = {}
    for row in rows:
        part = parts.get(row["part_id"])
        if part is None:
            class_names = row["class_names"]
            shared = {
                "model_name": row["model_name"],
                "model_version": row["model_version"],
                "source": PredictionSource.BATCH,
                "request_id": row["request_id"],
                "batch_id": row["batch_id"],
                "created_at": datetime.fromisoformat(row["created_at"]),
                "latency_ms": row["latency_ms"],
            }
            part = (
                shared,
                json_values.loads(row["input_columns"]),
                None if class_names is None else json_values.loads(class_names),
            )
            parts[row["part_id"]] = part
        shared, input_columns, class_names = part
        probabilities = row["probabilities"]
        yield PredictionRecord.model_construct(
            **shared,
            row_index=row["row_index"],
            input_row=dict(zip(input_columns, _decoded_inputs(row["input_values"]), strict=True)),
            prediction=json_values.loads(row["prediction"]),
            probabilities=None
            if probabilities is None or class_names is None
            else dict(zip(class_names, json_values.loads(probabilities), strict=True)),
            prediction_key=row["prediction_key"],
        )


def move_legacy_batch_rows(connection: sqlite3.Connection) -> None:
    """Schema migration 2's data step: batch rows written to `predictions` by schema 1 become
    one-row parts. Done in Python, not SQL, because SQLite's JSON functions print floats with
    15 digits and would round the stored inputs."""
    legacy = connection.execute(
        f"SELECT {SCHEMA_1_PREDICTION_COLUMNS}, NULL AS prediction_key FROM predictions "
        "WHERE source = ? ORDER BY id",
        (PredictionSource.BATCH.value,),
    ).fetchall()
    for row in legacy:
        write_part(connection, encode_record(prediction_from_row(row)))
    connection.execute("DELETE FROM predictions WHERE source = ?", (PredictionSource.BATCH.value,))
