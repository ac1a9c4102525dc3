"""`POST /outcomes` bodies (JSON or CSV) as a `RecordOutcomesRequest`, and its answer as JSON.

JSON: `{"outcomes": [{"request_id": "...", "row": 0, "label": "yes"}, ...]}` (or the list
alone); an outcome names its prediction by `request_id` or `batch_id` with `row`, or by
`prediction_key` (the caller's own key column) with an optional `model`. CSV: a header naming
those columns and `label`; each row fills one kind of key. A CSV label column
is typed as a whole, as pandas reads one: all whole numbers are integers, all numbers are
doubles, all true/false are booleans, anything else is text. The predictor checks the keys;
this module refuses what cannot even be put in the message, naming the field.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mlplatform.gateway.status_mapping import invalid_argument
from mlplatform.v1 import predictor_pb2

KEY_FIELDS = ("request_id", "batch_id", "prediction_key")
EXPECTED = (
    "expected request_id (or batch_id), row and label; or prediction_key, label and "
    "optionally model"
)
_BOOLEANS = {"true": True, "false": False}


def _label_field(value: Any, position: int) -> tuple[str, Any]:
    if isinstance(value, bool):
        return "label_bool", value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return "label_int64", value
    if isinstance(value, float) and math.isfinite(value):
        return "label_double", value
    if isinstance(value, str):
        return "label_string", value
    raise invalid_argument(
        "label", f"outcome {position}: {value!r:.40} is not a string, a finite number or a boolean"
    )


def outcome_message(row: Mapping[str, Any], position: int) -> predictor_pb2.Outcome:
    """One outcome object as its message; ApiError naming the field that does not fit."""
    if not isinstance(row, Mapping):
        raise invalid_argument("outcomes", f"outcome {position} is not an object; {EXPECTED}")
    unknown = sorted(set(row) - {*KEY_FIELDS, "row", "model", "label"})
    if unknown:
        raise invalid_argument(unknown[0], f"outcome {position}: unknown field; {EXPECTED}")
    keys = [name for name in KEY_FIELDS if row.get(name) not in (None, "")]
    if len(keys) != 1:
        raise invalid_argument(
            "request_id",
            f"outcome {position}: give exactly one of request_id, batch_id or prediction_key",
        )
    key_value = row[keys[0]]
    if not isinstance(key_value, str):
        raise invalid_argument(keys[0], f"outcome {position}: expected a string")
    fields: dict[str, Any] = {keys[0]: key_value}
    row_index, model = row.get("row"), row.get("model")
    if keys[0] == "prediction_key":
        if row_index is not None:
            raise invalid_argument("row", f"outcome {position}: not used with prediction_key")
        if model not in (None, ""):
            if not isinstance(model, str):
                raise invalid_argument("model", f"outcome {position}: expected a model name")
            fields["model"] = model
    else:
        if model not in (None, ""):
            raise invalid_argument("model", f"outcome {position}: used with prediction_key only")
        if (
            isinstance(row_index, bool)
            or not isinstance(row_index, int)
            or not 0 <= row_index < 2**63
        ):
            raise invalid_argument("row", f"outcome {position}: expected a whole number >= 0")
        fields["row"] = row_index
    if "label" not in row or row["label"] is None:
        raise invalid_argument("label", f"outcome {position}: missing; {EXPECTED}")
    label_field, label = _label_field(row["label"], position)
    return predictor_pb2.Outcome(**fields, **{label_field: label})


def request_from_json(document: Any) -> predictor_pb2.RecordOutcomesRequest:
    rows = document.get("outcomes") if isinstance(document, dict) else document
    if not isinstance(rows, list) or not rows:
        raise invalid_argument(
            "outcomes", f'expected {{"outcomes": [...]}} with at least one outcome; {EXPECTED}'
        )
    return predictor_pb2.RecordOutcomesRequest(
        outcomes=[outcome_message(row, position) for position, row in enumerate(rows)]
    )


def _typed_column(values: Sequence[str]) -> list[Any]:
    """A CSV column's cells as one type for all (see the module docstring)."""
    present = [value for value in values if value != ""]
    for convert in (int, float):
        try:
            return [convert(value) if value != "" else None for value in values]
        except ValueError:
            continue
    if present and all(value.lower() in _BOOLEANS for value in present):
        return [_BOOLEANS[value.lower()] if value != "" else None for value in values]
    return [value if value != "" else None for value in values]


def request_from_csv(body: bytes) -> predictor_pb2.RecordOutcomesRequest:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid_argument("body", "the CSV body is not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [] if "label" in header else ["label"]
    if not any(name in header for name in KEY_FIELDS):
        missing.insert(0, "request_id")
    elif "row" not in header and ("request_id" in header or "batch_id" in header):
        missing.insert(0, "row")
    if missing:
        raise invalid_argument(missing[0], f"column missing from the CSV header; {EXPECTED}")
    rows = list(reader)
    if not rows:
        raise invalid_argument("body", f"the CSV has no outcome rows; {EXPECTED}")
    labels = _typed_column([row.get("label") or "" for row in rows])
    outcomes = []
    for position, (row, label) in enumerate(zip(rows, labels, strict=True)):
        row_index: Any = row.get("row") or None  # an empty cell: no row (prediction keys)
        if row_index is not None and row_index.strip().isdigit():
            row_index = int(row_index)  # anything else: outcome_message names it
        fields = {name: row.get(name) for name in (*KEY_FIELDS, "model") if name in header}
        outcomes.append(outcome_message({**fields, "row": row_index, "label": label}, position))
    return predictor_pb2.RecordOutcomesRequest(outcomes=outcomes)


def outcomes_result(response: predictor_pb2.RecordOutcomesResponse) -> dict[str, Any]:
    return {
        "matched": response.matched,
        "labelled": response.labelled,
        "replaced": response.replaced,
        "reused_prediction_keys": list(response.reused_prediction_keys),
        "reused_prediction_key_count": response.reused_prediction_key_count,
    }
