"""Input checking against a model's schema (plain function, no server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.common.input_schema import (
    ColumnKind,
    Columns,
    ColumnSpec,
    DoublesLayout,
    DoublesRows,
    InvalidInputError,
    check_input,
    check_input_rows,
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


DOUBLES = (
    ColumnSpec("a", ColumnKind.DOUBLE),
    ColumnSpec("b", ColumnKind.DOUBLE, required=False),
)


@pytest.mark.parametrize("with_layout", [True, False], ids=["model's layout", "derived"])
@pytest.mark.parametrize("as_matrix", [True, False], ids=["matrix", "columns"])
def test_all_double_rows_take_the_fast_path_and_missing_values_still_name_the_column(
    with_layout: bool, as_matrix: bool
) -> None:
    """The all-double path (a layout worked out once per model, a decoder's matrix or one
    array per column) gives the general path's answers: an optional column may miss values,
    a required one is refused by name."""
    layout = DoublesLayout.of(DOUBLES) if with_layout else None

    def check(a: list[float], b: list[float]) -> pd.DataFrame:
        arrays = {"a": np.array(a), "b": np.array(b)}
        if as_matrix:
            matrix = np.column_stack(list(arrays.values()))
            return check_input(DoublesRows(matrix, ("a", "b")), DOUBLES, 10, layout)
        return check_input(Columns(arrays, len(a)), DOUBLES, 10, layout)

    checked = check([1.0, 2.0], [np.nan, 4.0])
    assert list(checked.columns) == ["a", "b"]
    assert checked["a"].tolist() == [1.0, 2.0]
    assert np.isnan(checked["b"][0]) and checked["b"][1] == 4.0
    with pytest.raises(InvalidInputError) as caught:
        check([1.0, np.nan], [3.0, 4.0])
    assert caught.value.columns == ("a",)
    assert "has missing values" in str(caught.value)


def test_all_double_rows_can_stay_a_matrix_that_answers_like_the_checked_frame() -> None:
    """`check_input_rows` leaves all-double rows as `DoublesRows` (the batcher builds one frame
    per batch); what it answers matches `check_input`'s frame, and other schemas get a frame."""
    arrays = {"a": np.array([1.0, 2.0]), "b": np.array([np.nan, 4.0])}
    kept = check_input_rows(Columns(arrays, 2), DOUBLES, 10)
    frame = check_input(Columns(arrays, 2), DOUBLES, 10)
    assert isinstance(kept, DoublesRows)
    assert len(kept) == 2
    assert list(kept.columns) == list(frame.columns) == ["a", "b"]
    np.testing.assert_array_equal(kept.to_numpy(), frame.to_numpy())
    pd.testing.assert_frame_equal(kept.to_frame(), frame)
    with pytest.raises(InvalidInputError) as caught:
        check_input_rows(Columns({"a": np.array([np.nan]), "b": np.array([1.0])}, 1), DOUBLES)
    assert caught.value.columns == ("a",)
    assert isinstance(check_input_rows(rows(), SCHEMA), pd.DataFrame)


def test_only_an_all_double_schema_has_a_doubles_layout() -> None:
    assert DoublesLayout.of(SCHEMA) is None
    assert DoublesLayout.of(()) is None
    layout = DoublesLayout.of(DOUBLES)
    assert layout is not None and layout.names == ("a", "b")
    assert layout.required is not None and layout.required.tolist() == [True, False]


@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize("with_layout", [True, False], ids=["model's layout", "derived"])
@pytest.mark.parametrize("as_matrix", [True, False], ids=["matrix", "columns"])
def test_an_infinity_is_refused_in_every_double_column_naming_its_row(
    value: float, with_layout: bool, as_matrix: bool
) -> None:
    """Optional columns too: they may miss values, but no model can use an infinity."""
    layout = DoublesLayout.of(DOUBLES) if with_layout else None
    arrays = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([np.nan, value, value])}
    features = Columns(arrays, 3)
    if as_matrix:
        features = DoublesRows(np.column_stack(list(arrays.values())), ("a", "b"))
    with pytest.raises(InvalidInputError) as caught:
        check_input_rows(features, DOUBLES, 10, layout)
    assert caught.value.columns == ("b",)
    assert str(caught.value) == (
        f"column 'b': row 1 holds {value!r} (1 more rows hold infinities); expected a finite double"
    )


def test_an_infinity_in_a_frame_of_mixed_kinds_is_refused() -> None:
    error = refusal(rows(amount=[1.0, -np.inf]))
    assert error.columns == ("amount",)
    assert "row 1 holds -inf; expected a finite double" in str(error)


def test_an_infinity_is_not_a_whole_number_for_an_integer_column() -> None:
    error = refusal(rows(visits=[np.nan, np.inf]))
    assert error.columns == ("visits",)
    assert "expected int64, got double inf at row 1" in str(error)


def test_missing_values_name_the_first_row_without_one() -> None:
    error = refusal(rows(amount=[1.0, np.nan]))
    assert "column 'amount': has missing values (the first at row 1)" in str(error)


def test_the_message_names_at_most_twenty_columns_and_counts_the_rest() -> None:
    """10,000 unknown columns: the message stays short; `problems` keeps every one."""
    frame = pd.concat(
        [rows(), pd.DataFrame(np.ones((2, 10_000)), columns=[f"x{i}" for i in range(10_000)])],
        axis=1,
    )
    error = refusal(frame)
    assert len(error.problems) == 10_000
    names = ", ".join(f"'x{i}'" for i in range(20))
    assert str(error) == f"columns {names} and 9980 more: not an input of the model"


def test_long_names_are_cut_and_problems_past_the_limit_are_counted() -> None:
    long_name = "y" * 100_000
    frame = rows(**{long_name: [1.0, 2.0]}).drop(columns=["segment", "member"])
    error = refusal(frame)
    assert error.columns == (long_name, "segment", "member")  # kept whole for callers
    assert str(error) == (
        f"column {'y' * 63 + '…'!r}: not an input of the model; "
        "column 'segment': missing; expected a string column; "
        "column 'member': missing; expected a bool column"
    )
    assert len(str(error)) < 300
