"""A caller's key column: taken off the rows before the model sees them, kept as text.

A caller who sends a key column (`key_column` in a batch or predict request) names each row
with its own id (an order number, a customer id), so outcomes can later find the prediction by
that id rather than by (request or batch id, row). The column is not a model input: it comes
off before the rows are checked against the model's schema, and each row's key is logged with
its prediction. Keys are text: numbers become their decimal text (a whole float such as 42.0,
which a number column with gaps holds, becomes "42", as an outcome file names it); a missing
key leaves that row without one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.common.input_problems import InputProblem, InvalidInputError
from mlplatform.common.input_schema import Columns, ColumnValues, DoublesRows


def key_text(value: Any) -> str | None:
    """One key as stored: text, or None for a missing or empty one."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = value if isinstance(value, str) else str(value)
    return text or None


def key_texts(values: Iterable[Any]) -> list[str | None]:
    """Every key of a column as stored (see `key_text`)."""
    return [key_text(value) for value in values]


def _missing_key_column(key_column: str) -> InvalidInputError:
    return InvalidInputError(
        [InputProblem(key_column, "missing; it was named as the key column (key_column)")]
    )


def _column_keys(values: ColumnValues) -> list[str | None]:
    """Every key of one column, a Series (whose missing values may be pd.NA) or an array."""
    if isinstance(values, pd.Series):
        return key_texts(values.astype(object).where(values.notna(), None))
    return key_texts(values.tolist())  # plain Python values: no numpy scalar per key


def split_key_column(rows: pd.DataFrame, key_column: str) -> tuple[pd.DataFrame, list[str | None]]:
    """`rows` without the key column, and each row's key; InvalidInputError naming the
    column when the rows have none by that name."""
    if key_column not in rows.columns:
        raise _missing_key_column(key_column)
    return rows.drop(columns=[key_column]), _column_keys(rows[key_column])


def split_key_rows(
    rows: DoublesRows | Columns, key_column: str
) -> tuple[DoublesRows | Columns, list[str | None]]:
    """`split_key_column` for decoded rows (the predictor's): the rows without the key column,
    in the same representation, and each row's key."""
    if isinstance(rows, DoublesRows):
        if key_column not in rows.names:
            raise _missing_key_column(key_column)
        position = rows.names.index(key_column)
        matrix = rows.matrix
        keys = _column_keys(matrix[:, position])
        names = rows.names[:position] + rows.names[position + 1 :]
        # A key column first or last leaves a view; one in between, the two sides joined
        # (np.delete does the same, slower: it dominates a one-row request's cost).
        if position == len(names):
            rest = matrix[:, :position]
        elif position == 0:
            rest = matrix[:, 1:]
        else:
            rest = np.concatenate((matrix[:, :position], matrix[:, position + 1 :]), axis=1)
        return DoublesRows(rest, names), keys
    if key_column not in rows.values:
        raise _missing_key_column(key_column)
    values = dict(rows.values)
    keys = _column_keys(values.pop(key_column))
    return Columns(values, rows.row_count), keys
