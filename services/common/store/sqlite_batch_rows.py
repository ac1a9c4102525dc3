"""How batch predictions map to the SQLite store's two batch tables. Pure functions and SQL.

The batch inferer writes rows by the hundred thousand, and a predictions row that repeats
everything (model, version, batch id, time, the input column names in every row's JSON) with
five indexes costs more than a fast model spends predicting it. So a stored
chunk is a *part*: what every row of the chunk shares lives once in `batch_parts` (model,
version, time, latency, the input column names, the class names), and each `batch_rows` row
holds only its key, its part, its input values in the part's column order, its prediction, and
its probabilities in the part's class order.

Input values are a JSON array, or, when every input column is a double (the usual batch), the
row's doubles as one BLOB of 8-byte little-endian floats: encoding is then a slice rather than
JSON, and the rows take less than half the disk. Probabilities are such a BLOB too (rows written
before they were are JSON text, which still reads). Either way a value that is not finite reads
back as None, as JSON has it.

A part's rows are written by one INSERT ... SELECT over `json_each` of one JSON array (each
row's prediction, and its JSON inputs and key when it has them), with the BLOBs cut from one
buffer per part by `substr`: binding every row's values from Python in `executemany` costs the
writer more than twice the CPU per row.

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


def _insert_rows(with_key: bool) -> str:
    """The part's rows from :rows, a JSON array with one element per row: the prediction's JSON
    text, or [prediction, input values or null, prediction key or null] when the inputs are
    not a BLOB or the rows have keys. BLOB values are cut from :inputs and :probabilities.
    (`WHERE true` tells SQLite's parser that ON CONFLICT is not a join's ON.)"""
    key_column, key_value = "", ""
    if with_key:
        key_column, key_value = ", prediction_key", ", json_extract(row.value, '$[2]')"
    return (
        "INSERT INTO batch_rows (batch_id, row_index, part_id, input_values, prediction, "
        f"probabilities{key_column}) "
        "SELECT :batch_id, :first_row + row.key, :part_id, "
        "coalesce(substr(:inputs, row.key * :input_width + 1, :input_width), "
        "json_extract(row.value, '$[1]')), "
        "CASE row.type WHEN 'text' THEN row.value ELSE json_extract(row.value, '$[0]') END, "
        f"substr(:probabilities, row.key * :probability_width + 1, :probability_width){key_value} "
        "FROM json_each(:rows) AS row WHERE true ON CONFLICT DO NOTHING"
    )


INSERT_ROWS = _insert_rows(with_key=False)  # also what schema 2 (migration 2's data step) knows
INSERT_KEYED_ROWS = _insert_rows(with_key=True)
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
    the parameters of INSERT_ROWS but the part's id."""

    header: tuple[Any, ...]
    row_count: int
    rows: dict[str, Any]
    keyed: bool


def _doubles(values: Any) -> tuple[bytes, int]:
    """A two-dimensional array as the BLOB of its rows' doubles, back to back, and the width
    of one row in bytes."""
    import numpy as np

    array = np.ascontiguousarray(values, dtype=_DOUBLES)
    return array.tobytes(), _DOUBLE_BYTES * array.shape[1]


def _input_values(batch: BatchPredictions) -> tuple[list[str], Any]:
    """The input column names, and the rows' values: an array of doubles when every column is
    float64 (stored as a BLOB, see the module doc), else a list of one JSON array per row."""
    import numpy as np

    inputs = batch.inputs
    names = [str(name) for name in inputs.columns]
    if names and len(inputs) and all(dtype == np.float64 for dtype in inputs.dtypes):
        return names, inputs.to_numpy()
    columns = batch.input_columns()
    if not columns:
        return names, ["[]"] * len(batch)
    return names, json_values.dumps_each(zip(*columns.values(), strict=True), "input_row")


def decoded_values(stored: str | bytes) -> list[Any]:
    """A row's input values or probabilities as this module stores them (JSON text, or a
    BLOB of doubles)."""
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


def _encoded(
    header: tuple[Any, ...],
    predictions: list[str],
    inputs: Any,
    probabilities: Any,
    keys: list[str | None] | None,
) -> EncodedPart:
    """The part's INSERT_ROWS parameters; `inputs` is an array of doubles or a JSON text per
    row, `probabilities` an array or None."""
    row_inputs: list[str] | None = inputs if isinstance(inputs, list) else None
    rows: list[Any] = predictions
    if row_inputs is not None or keys is not None:
        missing = [None] * len(predictions)
        rows = list(
            map(list, zip(predictions, row_inputs or missing, keys or missing, strict=True))
        )
    input_blob, input_width = (None, None) if row_inputs is not None else _doubles(inputs)
    probability_blob, probability_width = (None, None)
    if probabilities is not None:
        probability_blob, probability_width = _doubles(probabilities)
    parameters = {
        "batch_id": header[0],
        "first_row": header[6],
        "rows": json_values.dumps(rows, "prediction"),
        "inputs": input_blob,
        "input_width": input_width,
        "probabilities": probability_blob,
        "probability_width": probability_width,
    }
    return EncodedPart(header, len(predictions), parameters, keyed=keys is not None)


def encode_batch(batch: BatchPredictions) -> EncodedPart:
    """A chunk of batch predictions as one part, column by column, with no record per row."""
    names, inputs = _input_values(batch)
    class_names = None
    if batch.probabilities is not None:
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
    keys = None if batch.prediction_keys is None else list(batch.prediction_keys)
    return _encoded(header, _prediction_values(batch), inputs, batch.probabilities, keys)


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
    return _encoded(
        header,
        [json_values.dumps(record.prediction, "prediction")],
        [json_values.dumps(list(record.input_row.values()), "input_row")],
        None if probabilities is None else [list(probabilities.values())],
        None if record.prediction_key is None else [record.prediction_key],
    )


def write_part(connection: sqlite3.Connection, part: EncodedPart) -> int:
    """Writes a part inside the caller's write transaction; returns the rows it added (rows
    already stored under their key are skipped, and a part that adds none is not kept)."""
    if not part.row_count:
        return 0
    part_id = connection.execute(INSERT_PART, part.header).lastrowid
    insert = INSERT_KEYED_ROWS if part.keyed else INSERT_ROWS
    added = connection.execute(insert, {**part.rows, "part_id": part_id}).rowcount
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
            input_row=dict(zip(input_columns, decoded_values(row["input_values"]), strict=True)),
            prediction=json_values.loads(row["prediction"]),
            probabilities=None
            if probabilities is None or class_names is None
            else dict(zip(class_names, decoded_values(probabilities), strict=True)),
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
