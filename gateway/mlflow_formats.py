"""MLflow scoring-server requests (`mlflow models serve`'s `/invocations`) -> Frame.

The four JSON input fields MLflow accepts, and the shapes each takes for tabular models:

- `dataframe_split`: `{"columns": [...], "data": [[...], ...]}` (`index` is ignored);
- `dataframe_records`: `[{"col": value, ...}, ...]`;
- `instances` and `inputs`: rows as objects, a column mapping `{"col": [values...]}`, or
  positional rows `[[...], ...]` (scalars: one value per row).

Rows without column names (positional rows, `dataframe_split` without `columns`) take the
model's input columns in order, as MLflow does with a model's signature: the caller supplies
those names later (`with_column_names`). `params.predict_method` picks `predict` (the default)
or `predict_proba`, as MLflow's scikit-learn flavour does. CSV bodies (`text/csv`) are read
with pandas, as MLflow reads them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlplatform.gateway.json_frames import (
    frame_from_column_mapping,
    frame_from_columns,
    frame_from_records,
    frame_from_split,
    rows_of,
)
from mlplatform.gateway.status_mapping import invalid_argument
from mlplatform.v1 import frame_pb2

DF_SPLIT = "dataframe_split"
DF_RECORDS = "dataframe_records"
INSTANCES = "instances"
INPUTS = "inputs"
INPUT_FIELDS = (DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS)
PREDICT_METHODS = ("predict", "predict_proba")


@dataclass(frozen=True)
class Invocation:
    """A parsed `/invocations` request: a Frame, or positional rows awaiting column names."""

    frame: frame_pb2.Frame | None
    positional_rows: list[list[Any]] | None
    rows_field: str
    predict_method: str = "predict"

    @property
    def wants_probabilities(self) -> bool:
        return self.predict_method == "predict_proba"

    def with_column_names(self, names: Sequence[str]) -> frame_pb2.Frame:
        """The Frame, naming positional columns after the model's input columns."""
        if self.frame is not None:
            return self.frame
        assert self.positional_rows is not None
        rows = self.positional_rows
        for index, row in enumerate(rows):
            if len(row) != len(names):
                raise invalid_argument(
                    f"{self.rows_field}[{index}]",
                    f"holds {len(row)} values; the model takes {len(names)} columns "
                    f"({', '.join(names)}): send them in that order, or name them",
                )
        columns = [list(column) for column in zip(*rows, strict=True)] if rows else []
        frame = frame_from_columns(list(names), columns or [[] for _ in names])
        frame.row_count = len(rows)
        return frame


def _predict_method(params: object) -> str:
    if params is None:
        return "predict"
    if not isinstance(params, dict):
        raise invalid_argument("params", "expected an object of inference parameters")
    method = params.get("predict_method", "predict")
    if method not in PREDICT_METHODS:
        raise invalid_argument(
            "params.predict_method", f"{method!r:.40} is not one of {', '.join(PREDICT_METHODS)}"
        )
    return str(method)


def _positional(rows: object, field: str, method: str) -> Invocation:
    if not isinstance(rows, list):
        raise invalid_argument(field, "expected an array of rows")
    if all(not isinstance(row, list | dict) for row in rows):
        rows = [[value] for value in rows]  # one value per row: a single-column model
    width = len(rows[0]) if rows and isinstance(rows[0], list) else 0
    return Invocation(None, rows_of(rows, field, width), field, method)


def _from_rows_or_mapping(value: object, field: str, method: str) -> Invocation:
    if isinstance(value, dict):
        return Invocation(frame_from_column_mapping(value, field), None, field, method)
    if not isinstance(value, list):
        raise invalid_argument(field, "expected rows (an array) or columns (an object)")
    if value and isinstance(value[0], dict):
        return Invocation(frame_from_records(value, field), None, field, method)
    return _positional(value, field, method)


def parse_invocation(document: object) -> Invocation:
    """The Invocation of an MLflow scoring request's JSON document."""
    if not isinstance(document, dict):
        raise invalid_argument(
            "body", f"expected a JSON object with exactly one of {', '.join(INPUT_FIELDS)}"
        )
    present = [field for field in INPUT_FIELDS if field in document]
    if len(present) != 1:
        raise invalid_argument(
            "body",
            f"expected exactly one of {', '.join(INPUT_FIELDS)}; got "
            f"{', '.join(present) if present else 'none'}",
        )
    field = present[0]
    method = _predict_method(document.get("params"))
    value = document[field]
    if field == DF_SPLIT:
        if not isinstance(value, dict) or "data" not in value:
            raise invalid_argument(field, 'expected {"columns": [...], "data": [[...], ...]}')
        if "columns" not in value:
            return _positional(value["data"], f"{field}.data", method)
        frame = frame_from_split(
            value["columns"], value["data"], f"{field}.columns", f"{field}.data"
        )
        return Invocation(frame, None, field, method)
    if field == DF_RECORDS:
        if isinstance(value, list) and value and isinstance(value[0], list):
            return _positional(value, field, method)
        return Invocation(frame_from_records(value, field), None, field, method)
    return _from_rows_or_mapping(value, field, method)


def parse_csv(body: bytes) -> frame_pb2.Frame:
    """The Frame of a CSV body with a header row (pandas reads it, as MLflow does)."""
    import pandas as pd  # only CSV callers pay for the import

    from mlplatform.client.frames import FrameError, dataframe_to_frame

    try:
        rows = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise invalid_argument("body", f"not a CSV table with a header row: {error}") from None
    try:
        return dataframe_to_frame(rows)
    except FrameError as error:
        raise invalid_argument(error.column or "body", error.detail) from None
