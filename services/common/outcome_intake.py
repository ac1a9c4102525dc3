"""Outcomes as callers send them (rows of a CSV, Parquet or JSON body, or gRPC messages),
checked and turned into store records, then recorded all or nothing.

Every way in (gRPC `RecordOutcomes`, REST `POST /outcomes` through the predictor, `mlp outcomes`)
ends here, so each refuses the same input with the same words: an `InvalidInputError` whose
problems name the column (`label`, `row`, `request_id`, `prediction_key`...) and, where it
helps, the row.

Three kinds of key: `request_id` + `row` (online), `batch_id` + `row` (batch), or
`prediction_key` (the caller's own key column), optionally with `model` to match one model's
predictions only. A file may mix them row by row; each row gives exactly one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from mlplatform.common.input_problems import InputProblem, InvalidInputError
from mlplatform.common.prediction_keys import key_text
from mlplatform.common.store import (
    DuplicateOutcomeError,
    Outcome,
    OutcomeKind,
    OutcomeReport,
    Store,
)
from mlplatform.common.summaries import NAMES_LIMIT

LABEL_COLUMN = "label"
ROW_COLUMN = "row"
MODEL_COLUMN = "model"
KEY_COLUMNS = {kind.column: kind for kind in OutcomeKind}
EXPECTED_COLUMNS = (
    "request_id,row,label (online predictions), batch_id,row,label (batch) or "
    "prediction_key,label with an optional model column (predictions sent with a key column)"
)


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, and a missing cell (NaN, None, pandas NA) as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _outcome(position: int, row: Mapping[str, Any]) -> Outcome | InputProblem:
    keys = {name: _plain(row.get(name)) for name in KEY_COLUMNS}
    given = [name for name, value in keys.items() if value not in (None, "")]
    if len(given) != 1:
        return InputProblem(
            "request_id",
            f"outcome {position}: give exactly one of request_id, batch_id or prediction_key",
        )
    key_name = given[0]
    kind = KEY_COLUMNS[key_name]
    key = keys[key_name]
    row_index = _plain(row.get(ROW_COLUMN))
    model = _plain(row.get(MODEL_COLUMN))
    if kind is OutcomeKind.PREDICTION_KEY:
        if row_index is not None:
            return InputProblem(
                ROW_COLUMN, f"outcome {position}: not used with prediction_key; leave it empty"
            )
        if isinstance(key, int) and not isinstance(key, bool):
            key = key_text(key)  # a number column of keys: the text the key was logged as
    elif model not in (None, ""):
        return InputProblem(
            MODEL_COLUMN, f"outcome {position}: used with prediction_key only; leave it empty"
        )
    elif row_index is None:
        return InputProblem(
            ROW_COLUMN, f"outcome {position}: missing; {key_name} needs a whole number >= 0"
        )
    fields = {
        "kind": kind,
        "key": key,
        "row_index": row_index,
        "model_name": model or None,
        "label": _plain(row.get(LABEL_COLUMN)),
    }
    try:
        return Outcome(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else LABEL_COLUMN
        column = {"row_index": ROW_COLUMN, "key": key_name, "model_name": MODEL_COLUMN}.get(
            field, field
        )
        expected = {
            ROW_COLUMN: "a whole number >= 0",
            LABEL_COLUMN: "a string, a finite number or a boolean",
            key_name: "a non-empty string",
            MODEL_COLUMN: "a model name (text)",
        }.get(column, first["msg"])
        return InputProblem(column, f"outcome {position}: {fields.get(field)!r} is not {expected}")


def outcomes_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Outcome]:
    """Each row (request_id or batch_id with row, or prediction_key with an optional model;
    and label) as an Outcome; InvalidInputError listing the first few bad rows when any is
    bad, so nothing is stored half."""
    outcomes: list[Outcome] = []
    problems: list[InputProblem] = []
    for position, row in enumerate(rows):
        checked = _outcome(position, row)
        if isinstance(checked, Outcome):
            outcomes.append(checked)
        elif len(problems) < NAMES_LIMIT:
            problems.append(checked)
        else:
            break
    if problems:
        raise InvalidInputError(problems)
    if not outcomes:
        raise InvalidInputError([InputProblem(None, "no outcomes given")])
    return outcomes


def read_outcome_file(path: Path) -> pd.DataFrame:
    """The table in a .csv or .parquet file; ids, keys and model names are read as text,
    whatever they look like."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text_columns = {name: str for name in (*KEY_COLUMNS, MODEL_COLUMN)}
        return pd.read_csv(path, dtype=text_columns, keep_default_na=False, na_values=[""])
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise InvalidInputError([InputProblem(None, f"{path.name}: expected a .csv or .parquet file")])


def outcomes_from_table(table: pd.DataFrame) -> list[Outcome]:
    """The outcomes in a table with columns request_id/batch_id and row, or prediction_key
    (and model); and label."""
    missing = [LABEL_COLUMN] if LABEL_COLUMN not in table.columns else []
    if not any(name in table.columns for name in KEY_COLUMNS):
        missing.insert(0, "request_id")
    elif ROW_COLUMN not in table.columns and (
        "request_id" in table.columns or "batch_id" in table.columns
    ):
        missing.insert(0, ROW_COLUMN)
    if missing:
        raise InvalidInputError(
            [
                InputProblem(name, f"missing; expected columns {EXPECTED_COLUMNS}")
                for name in missing
            ]
        )
    return outcomes_from_rows(table.to_dict(orient="records"))


def record(store: Store, outcomes: Sequence[Outcome]) -> OutcomeReport:
    """Record `outcomes` all or nothing; InvalidInputError naming the unknown or repeated keys
    when they cannot all be stored."""
    try:
        report = store.record_outcomes(outcomes)
    except DuplicateOutcomeError as error:
        raise InvalidInputError([InputProblem(error.key.kind.column, str(error))]) from None
    if not report.stored:
        raise InvalidInputError(
            [
                InputProblem(
                    report.unknown[0].kind.column,
                    f"{len(report.unknown)} of {len(outcomes)} outcomes name no logged "
                    f"prediction ({_first_few(report.unknown)}; {report.matched} matched); "
                    "nothing was stored (predictions are logged a moment after their reply: "
                    "resend if they were just made)",
                )
            ]
        )
    return report


def _first_few(keys: Sequence[Any]) -> str:
    shown = ", ".join(str(key) for key in keys[:NAMES_LIMIT])
    more = len(keys) - NAMES_LIMIT
    return f"{shown} and {more} more" if more > 0 else shown


def reused_key_names(report: OutcomeReport) -> list[str]:
    """The first few prediction keys that named several predictions, as callers sent them."""
    return [key.key for key in report.reused_keys[:NAMES_LIMIT]]


def describe_report(report: OutcomeReport) -> str:
    """What a stored call did, in one sentence for people."""
    text = (
        f"matched {report.matched} outcomes to logged predictions: {report.labelled} "
        f"predictions labelled, {report.replaced} of them replacing an earlier outcome"
    )
    if report.reused_keys:
        count = len(report.reused_keys)
        text += (
            f"; {count} prediction key{'s' if count > 1 else ''} named several predictions, "
            f"each of which got the outcome ({_first_few(report.reused_keys)})"
        )
    return text
