"""Outcomes as callers send them (rows of a CSV, Parquet or JSON body, or gRPC messages),
checked and turned into store records, then recorded all or nothing.

Every way in (gRPC `RecordOutcomes`, REST `POST /outcomes` through the predictor, `mlp outcomes`)
ends here, so each refuses the same input with the same words: an `InvalidInputError` whose
problems name the column (`label`, `row`, `request_id`...) and, where it helps, the row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from mlplatform.common.input_problems import InputProblem, InvalidInputError
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
KEY_COLUMNS = {"request_id": OutcomeKind.REQUEST, "batch_id": OutcomeKind.BATCH}
EXPECTED_COLUMNS = "request_id,row,label (online predictions) or batch_id,row,label (batch)"


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
            "request_id", f"outcome {position}: give exactly one of request_id or batch_id"
        )
    key_name = given[0]
    fields = {
        "kind": KEY_COLUMNS[key_name],
        "key": keys[key_name],
        "row_index": _plain(row.get(ROW_COLUMN)),
        "label": _plain(row.get(LABEL_COLUMN)),
    }
    try:
        return Outcome(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else LABEL_COLUMN
        column = {"row_index": ROW_COLUMN, "key": key_name}.get(field, field)
        expected = {
            ROW_COLUMN: "a whole number >= 0",
            LABEL_COLUMN: "a string, a finite number or a boolean",
            key_name: "a non-empty string",
        }.get(column, first["msg"])
        return InputProblem(column, f"outcome {position}: {fields.get(field)!r} is not {expected}")


def outcomes_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Outcome]:
    """Each row (request_id or batch_id, row, label) as an Outcome; InvalidInputError listing
    the first few bad rows when any is bad, so nothing is stored half."""
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
    """The table in a .csv or .parquet file; ids are read as text, whatever they look like."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(
            path, dtype={name: str for name in KEY_COLUMNS}, keep_default_na=False, na_values=[""]
        )
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise InvalidInputError([InputProblem(None, f"{path.name}: expected a .csv or .parquet file")])


def outcomes_from_table(table: pd.DataFrame) -> list[Outcome]:
    """The outcomes in a table with columns request_id/batch_id, row and label."""
    missing = [name for name in (ROW_COLUMN, LABEL_COLUMN) if name not in table.columns]
    if not any(name in table.columns for name in KEY_COLUMNS):
        missing.insert(0, "request_id")
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
        column = "request_id" if error.key.kind is OutcomeKind.REQUEST else "batch_id"
        raise InvalidInputError([InputProblem(column, str(error))]) from None
    if not report.stored:
        shown = ", ".join(str(key) for key in report.unknown[:NAMES_LIMIT])
        more = len(report.unknown) - NAMES_LIMIT
        raise InvalidInputError(
            [
                InputProblem(
                    "request_id" if report.unknown[0].kind is OutcomeKind.REQUEST else "batch_id",
                    f"{len(report.unknown)} of {len(outcomes)} outcomes name no logged "
                    f"prediction ({shown}{f' and {more} more' if more > 0 else ''}); "
                    "nothing was stored (predictions are logged a moment after their reply: "
                    "resend if they were just made)",
                )
            ]
        )
    return report
