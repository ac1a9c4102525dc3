"""Input checking against a model's schema (plain function, no server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.common.input_schema import (
    ColumnKind,
    ColumnSpec,
    InvalidInputError,
    check_input,
)

SCHEMA = (
    ColumnSpec("amount", ColumnKind.DOUBLE),
    ColumnSpec("visits", ColumnKind.INT64, required=False),
    ColumnSpec("segment", ColumnKind.STRING),
    ColumnSpec("member", ColumnKind.BOOL),
)


def rows(**overrides: object) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "amount": [1.5, 2.5],
            "visits": [1, 2],
            "segment": ["retail", "clinic"],
            "member": [True, False],
        }
    )
    for name, values in overrides.items():
        frame[name] = values
    return frame


def refusal(frame: pd.DataFrame, max_rows: int | None = None) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        check_input(frame, SCHEMA, max_rows)
    return caught.value


def test_valid_rows_come_back_in_schema_order() -> None:
    frame = rows()[["member", "segment", "visits", "amount"]]
    checked = check_input(frame, SCHEMA)
    assert list(checked.columns) == ["amount", "visits", "segment", "member"]
    assert checked["visits"].dtype == np.int64
    assert checked["segment"].tolist() == ["retail", "clinic"]


def test_every_problem_is_reported_with_its_column() -> None:
    frame = rows(amount=["a", "b"], extra=[1, 2]).drop(columns="segment")
    error = refusal(frame)
    assert set(error.columns) == {"amount", "extra", "segment"}
    message = str(error)
    assert "column 'amount': expected double, got string" in message
    assert "column 'extra': not an input of the model" in message
    assert "column 'segment': missing; expected a string column" in message


def test_empty_frame_and_too_many_rows_are_refused() -> None:
    assert "no rows" in str(refusal(rows().head(0)))
    error = refusal(rows(), max_rows=1)
    assert "2 rows; the limit is 1" in str(error)
    assert error.columns == ()


def test_nullable_integers_with_gaps_become_floats_with_nan() -> None:
    checked = check_input(rows(visits=pd.array([3, None], dtype="Int64")), SCHEMA)
    assert checked["visits"].dtype == np.float64
    assert checked["visits"].iloc[0] == 3.0
    assert np.isnan(checked["visits"].iloc[1])


def test_nullable_integers_without_gaps_stay_integers() -> None:
    checked = check_input(rows(visits=pd.array([3, 4], dtype="Int64")), SCHEMA)
    assert checked["visits"].dtype == np.int64


def test_whole_floats_are_accepted_for_integer_columns_fractions_are_not() -> None:
    checked = check_input(rows(visits=[3.0, np.nan]), SCHEMA)
    assert checked["visits"].iloc[0] == 3.0
    error = refusal(rows(visits=[3.0, 2.5]))
    assert error.columns == ("visits",)
    assert "expected int64, got double 2.5" in str(error)


def test_integers_widen_to_doubles() -> None:
    checked = check_input(rows(amount=[1, 2]), SCHEMA)
    assert checked["amount"].dtype == np.float64


def test_required_column_with_missing_values_is_refused() -> None:
    error = refusal(rows(amount=[1.0, np.nan], segment=["a", None]))
    assert set(error.columns) == {"amount", "segment"}
    assert "has missing values" in str(error)


def test_bool_column_refuses_numbers() -> None:
    error = refusal(rows(member=[1.0, 0.0]))
    assert error.columns == ("member",)
    assert "expected bool, got double" in str(error)


def test_categorical_strings_are_accepted_for_string_columns() -> None:
    checked = check_input(rows(segment=pd.Categorical(["a", "b"])), SCHEMA)
    assert checked["segment"].tolist() == ["a", "b"]
