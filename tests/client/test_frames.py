"""Tests for the DataFrame <-> Frame codec: exact round trips, the documented decoded dtypes,
and a FrameError naming the column for everything the codec refuses."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplatform.client.frames import (
    FrameError,
    column_to_series,
    dataframe_to_frame,
    frame_to_dataframe,
    series_to_column,
)
from mlplatform.v1 import frame_pb2

SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64_MAX = int(np.iinfo(np.int64).max)

# One (input Series, expected decoded Series) pair per column kind. The expected side is written
# from the documented mapping, not from the codec, so it is an independent oracle.
ColumnCase = tuple[pd.Series, pd.Series]


def _int_bounds(dtype: str) -> tuple[int, int]:
    info = np.iinfo(dtype.lower())
    return int(info.min), min(int(info.max), INT64_MAX)


def _series(data: Any, n: int, dtype: Any = None) -> pd.Series:
    return pd.Series(data, index=pd.RangeIndex(n), dtype=dtype)


@st.composite
def _masked(draw: st.DrawFn, values: st.SearchStrategy[Any], n: int) -> list[Any]:
    """n values, some replaced by None (the caller turns None into its dtype's missing value)."""
    drawn = draw(st.lists(values, min_size=n, max_size=n))
    missing = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return [None if gone else value for value, gone in zip(drawn, missing, strict=True)]


def _float_case(width: int) -> Callable[[st.DrawFn, int], ColumnCase]:
    def case(draw: st.DrawFn, n: int) -> ColumnCase:
        values = draw(_masked(st.floats(width=width), n))
        raw = np.array([np.nan if v is None else v for v in values], dtype=f"float{width}")
        return _series(raw, n), _series(raw.astype(np.float64), n)

    return case


def _nullable_float_case(draw: st.DrawFn, n: int) -> ColumnCase:
    values = draw(_masked(st.floats(allow_nan=False), n))
    expected = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return _series(pd.array(values, dtype="Float64"), n), _series(expected, n)


def _numpy_int_case(dtype: str) -> Callable[[st.DrawFn, int], ColumnCase]:
    def case(draw: st.DrawFn, n: int) -> ColumnCase:
        low, high = _int_bounds(dtype)
        values = draw(st.lists(st.integers(low, high), min_size=n, max_size=n))
        return _series(np.array(values, dtype=dtype), n), _series(np.array(values, np.int64), n)

    return case


def _nullable_int_case(dtype: str) -> Callable[[st.DrawFn, int], ColumnCase]:
    def case(draw: st.DrawFn, n: int) -> ColumnCase:
        low, high = _int_bounds(dtype)
        values = draw(_masked(st.integers(low, high), n))
        source = _series(pd.array(values, dtype=dtype), n)
        if any(v is None for v in values):
            return source, _series(pd.array(values, dtype="Int64"), n)
        return source, _series(np.array(values, dtype=np.int64), n)

    return case


def _bool_case(draw: st.DrawFn, n: int) -> ColumnCase:
    values = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return _series(values, n), _series(values.copy(), n)


def _nullable_bool_case(draw: st.DrawFn, n: int) -> ColumnCase:
    values = draw(_masked(st.booleans(), n))
    source = _series(pd.array(values, dtype="boolean"), n)
    if any(v is None for v in values):
        return source, _series(pd.array(values, dtype="boolean"), n)
    return source, _series(np.array(values, dtype=bool), n)


def _expected_strings(values: list[str | None], n: int) -> pd.Series:
    data = np.empty(n, dtype=object)
    data[:] = values
    return _series(data, n, dtype=object)


def _object_string_case(draw: st.DrawFn, n: int) -> ColumnCase:
    values = draw(_masked(st.text(max_size=12), n))
    # Every spelling of "missing" in an object column must decode to None.
    markers = draw(st.lists(st.sampled_from([None, np.nan, pd.NA]), min_size=n, max_size=n))
    data = np.empty(n, dtype=object)
    data[:] = [marker if v is None else v for v, marker in zip(values, markers, strict=True)]
    return _series(data, n, dtype=object), _expected_strings(values, n)


def _string_dtype_case(draw: st.DrawFn, n: int) -> ColumnCase:
    values = draw(_masked(st.text(max_size=12), n))
    return _series(pd.array(values, dtype="string"), n), _expected_strings(values, n)


def _categorical_case(draw: st.DrawFn, n: int) -> ColumnCase:
    values = draw(_masked(st.sampled_from(["low", "mid", "hïgh", "最高"]), n))
    return _series(pd.Categorical(values), n), _expected_strings(values, n)


COLUMN_CASES: dict[str, Callable[[st.DrawFn, int], ColumnCase]] = {
    "float16": _float_case(16),
    "float32": _float_case(32),
    "float64": _float_case(64),
    "Float64": _nullable_float_case,
    **{
        dtype: _numpy_int_case(dtype)
        for dtype in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
    },
    **{
        dtype: _nullable_int_case(dtype)
        for dtype in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
    },
    "bool": _bool_case,
    "boolean": _nullable_bool_case,
    "object": _object_string_case,
    "string": _string_dtype_case,
    "category": _categorical_case,
}


@st.composite
def frame_cases(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A DataFrame over every supported column kind (0 rows and 0 columns included) and the
    DataFrame that decoding it must give."""
    n = draw(st.integers(min_value=0, max_value=25))
    names = draw(st.lists(st.text(max_size=6), unique=True, max_size=8))
    source: dict[str, pd.Series] = {}
    expected: dict[str, pd.Series] = {}
    for name in names:
        kind = draw(st.sampled_from(sorted(COLUMN_CASES)))
        source[name], expected[name] = COLUMN_CASES[kind](draw, n)
    if not names:
        return pd.DataFrame(index=pd.RangeIndex(n)), pd.DataFrame(index=pd.RangeIndex(n))
    return pd.DataFrame(source), pd.DataFrame(expected)


def _assert_decodes_to(frame: frame_pb2.Frame, expected: pd.DataFrame) -> None:
    decoded = frame_to_dataframe(frame)
    pd.testing.assert_frame_equal(decoded, expected, check_exact=True)
    # assert_frame_equal lets None and NaN stand for each other in object columns; we promise None.
    for name in decoded.columns:
        column = decoded[name]
        if column.dtype == object:
            assert all(isinstance(v, str) or v is None for v in column), name


# --- round trips ----------------------------------------------------------------------------


@SETTINGS
@given(frame_cases())
def test_round_trip_gives_documented_dtypes(case: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    source, expected = case
    frame = dataframe_to_frame(source)
    assert frame.row_count == len(source)
    assert [column.name for column in frame.columns] == list(source.columns)
    _assert_decodes_to(frame, expected)


@SETTINGS
@given(frame_cases())
def test_protobuf_bytes_round_trip(case: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    source, expected = case
    frame = dataframe_to_frame(source)
    parsed = frame_pb2.Frame.FromString(frame.SerializeToString())
    assert parsed == frame
    _assert_decodes_to(parsed, expected)


@SETTINGS
@given(frame_cases())
def test_decoded_frame_encodes_to_same_frame(case: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Decoded dtypes are a fixed point: re-encoding a decoded frame changes nothing."""
    frame = dataframe_to_frame(case[0])
    assert dataframe_to_frame(frame_to_dataframe(frame)) == frame


@SETTINGS
@given(
    st.lists(st.floats(), max_size=30),
    st.lists(st.one_of(st.none(), st.booleans()), max_size=30),
)
def test_raw_byte_paths_match_protobuf_encoding(
    floats: list[float], flags: list[bool | None]
) -> None:
    """The double and bool fast paths write wire bytes by hand: they must equal what protobuf
    builds from the values themselves."""
    doubles = series_to_column("x", pd.Series(floats, dtype=np.float64))
    reference = frame_pb2.Column(name="x")
    reference.double_values.SetInParent()
    reference.double_values.values.extend(0.0 if np.isnan(v) else v for v in floats)
    if any(np.isnan(v) for v in floats):
        reference.missing.extend(bool(np.isnan(v)) for v in floats)
    assert doubles.SerializeToString() == reference.SerializeToString()

    bools = series_to_column("b", pd.Series(pd.array(flags, dtype="boolean")))
    reference = frame_pb2.Column(name="b")
    reference.bool_values.SetInParent()
    reference.bool_values.values.extend(bool(v) for v in flags)
    if None in flags:
        reference.missing.extend(v is None for v in flags)
    assert bools.SerializeToString() == reference.SerializeToString()


@pytest.mark.parametrize(
    "source",
    [
        pd.DataFrame(),
        pd.DataFrame(index=pd.RangeIndex(7)),
        pd.DataFrame({"f": np.array([], np.float64), "i": np.array([], np.int64)}),
        pd.DataFrame({"s": pd.Series([], dtype=object), "b": np.array([], dtype=bool)}),
    ],
    ids=["no-rows-no-columns", "rows-no-columns", "no-rows-numeric", "no-rows-str-bool"],
)
def test_empty_frames_round_trip(source: pd.DataFrame) -> None:
    frame = dataframe_to_frame(source)
    assert frame.row_count == len(source)
    pd.testing.assert_frame_equal(frame_to_dataframe(frame), source)


def test_all_missing_columns_round_trip() -> None:
    # An all-missing categorical has float64 (not string) categories; object None has no type.
    source = pd.DataFrame(
        {
            "category": pd.Categorical([None, None]),
            "object": pd.Series([None, np.nan], dtype=object),
            "Int64": pd.array([None, None], dtype="Int64"),
        }
    )
    decoded = frame_to_dataframe(dataframe_to_frame(source))
    assert decoded["category"].tolist() == [None, None]
    assert decoded["object"].tolist() == [None, None]
    assert decoded["Int64"].dtype == "Int64"


def test_row_count_is_carried_without_columns() -> None:
    frame = frame_pb2.Frame.FromString(
        dataframe_to_frame(pd.DataFrame(index=range(5))).SerializeToString()
    )
    assert frame.row_count == 5
    assert frame_to_dataframe(frame).shape == (5, 0)


def test_unicode_names_and_values_round_trip() -> None:
    source = pd.DataFrame({"名前": ["ünïcödé", "😀 emoji", "", "trailing nul\x00", None]})
    frame = frame_pb2.Frame.FromString(dataframe_to_frame(source).SerializeToString())
    decoded = frame_to_dataframe(frame)
    assert list(decoded.columns) == ["名前"]
    assert decoded["名前"].tolist() == ["ünïcödé", "😀 emoji", "", "trailing nul\x00", None]


def test_index_is_dropped_and_column_order_kept() -> None:
    source = pd.DataFrame({"b": [1.5, 2.5], "a": [3, 4]}, index=["x", "y"])
    decoded = frame_to_dataframe(dataframe_to_frame(source))
    assert list(decoded.columns) == ["b", "a"]
    pd.testing.assert_index_equal(decoded.index, pd.RangeIndex(2))


def test_missing_slots_hold_type_default_and_infinities_are_values() -> None:
    column = series_to_column("x", pd.Series([np.inf, np.nan, -np.inf]))
    assert list(column.double_values.values) == [np.inf, 0.0, -np.inf]
    assert list(column.missing) == [False, True, False]
    assert not series_to_column("y", pd.Series([1.0, 2.0])).missing


def test_column_to_series_decodes_prediction_output() -> None:
    column = series_to_column("label", pd.Series(["yes", "no"]))
    series = column_to_series(column, 2)
    assert series.name == "label"
    assert series.tolist() == ["yes", "no"]


def test_all_false_missing_mask_decodes_as_not_missing() -> None:
    column = frame_pb2.Column(name="n", int64_values=frame_pb2.Int64Values(values=[1, 2]))
    column.missing.extend([False, False])
    assert column_to_series(column, 2).dtype == np.int64


def test_column_without_kind_is_allowed_when_there_are_no_rows() -> None:
    frame = frame_pb2.Frame(columns=[frame_pb2.Column(name="unset")], row_count=0)
    decoded = frame_to_dataframe(frame)
    assert list(decoded.columns) == ["unset"]
    assert decoded["unset"].dtype == object


# --- encode errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("series", "expected_in_message"),
    [
        (pd.Series(pd.to_datetime(["2024-01-01"])), "datetime64[ns]"),
        (pd.Series(pd.to_timedelta(["1 day"])), "timedelta64[ns]"),
        (pd.Series([1 + 2j]), "complex128"),
        (pd.Series(pd.period_range("2024-01", periods=1, freq="M")), "period[M]"),
        (pd.Series(pd.Categorical([1, 2])), "categorical"),
        (pd.Series(["a", 1, "b"], dtype=object), "non-string value at row 1 (int"),
        (pd.Series([b"raw"], dtype=object), "non-string value at row 0 (bytes"),
        (pd.Series([pd.Timestamp("2024-01-01"), "a"], dtype=object), "non-string value at row 0"),
        (pd.Series(np.array([2**63], dtype=np.uint64)), "exceeds int64 max"),
        (pd.Series(pd.array([2**64 - 1, None], dtype="UInt64")), "exceeds int64 max"),
        (pd.Series(["ok", "lone \ud800 surrogate"]), "row 1 is not valid Unicode"),
    ],
    ids=[
        "datetime",
        "timedelta",
        "complex",
        "period",
        "categorical-int",
        "mixed-object",
        "bytes",
        "timestamp-in-object",
        "uint64-too-big",
        "nullable-uint64-too-big",
        "lone-surrogate",
    ],
)
def test_unsupported_columns_are_named(series: pd.Series, expected_in_message: str) -> None:
    with pytest.raises(FrameError) as raised:
        dataframe_to_frame(pd.DataFrame({"ok": np.zeros(len(series)), "bad col": series}))
    assert raised.value.column == "bad col"
    assert "'bad col'" in str(raised.value)
    assert expected_in_message in str(raised.value)
    assert "expected" in str(raised.value)


def test_unsupported_dtype_message_format() -> None:
    with pytest.raises(FrameError) as raised:
        series_to_column("age", pd.Series(pd.to_datetime(["2024-01-01"])))
    assert str(raised.value) == (
        "column 'age': dtype datetime64[ns] is not supported; expected float, int, bool or string"
    )


def test_non_string_column_name_is_refused() -> None:
    with pytest.raises(FrameError) as raised:
        dataframe_to_frame(pd.DataFrame([[1.0, 2.0]]))  # columns 0 and 1
    assert raised.value.column == "0"
    assert "must be a string" in str(raised.value)


def test_duplicate_column_names_are_refused_on_encode() -> None:
    source = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["a", "twice", "twice"])
    with pytest.raises(FrameError) as raised:
        dataframe_to_frame(source)
    assert raised.value.column == "twice"
    assert "'twice'" in str(raised.value)


# --- decode errors --------------------------------------------------------------------------


def _doubles(name: str, values: list[float]) -> frame_pb2.Column:
    return frame_pb2.Column(name=name, double_values=frame_pb2.DoubleValues(values=values))


def _wrong_mask() -> frame_pb2.Column:
    column = _doubles("masked", [1.0, 2.0])
    column.missing.extend([True])
    return column


@pytest.mark.parametrize(
    ("columns", "row_count", "bad_column", "expected_in_message"),
    [
        ([_doubles("short", [1.0])], 2, "short", "holds 1 values; expected 2"),
        ([_doubles("long", [1.0, 2.0, 3.0])], 2, "long", "holds 3 values; expected 2"),
        ([_wrong_mask()], 2, "masked", "missing mask has 1 entries; expected 0 or 2"),
        ([frame_pb2.Column(name="unset")], 2, "unset", "no values kind is set"),
        ([_doubles("dup", [1.0]), _doubles("dup", [2.0])], 1, "dup", "unique column names"),
    ],
    ids=["too-few-values", "too-many-values", "mask-length", "no-kind", "duplicate-names"],
)
def test_invalid_frames_are_named(
    columns: list[frame_pb2.Column], row_count: int, bad_column: str, expected_in_message: str
) -> None:
    frame = frame_pb2.Frame(columns=columns, row_count=row_count)
    with pytest.raises(FrameError) as raised:
        frame_to_dataframe(frame)
    assert raised.value.column == bad_column
    assert f"column {bad_column!r}" in str(raised.value)
    assert expected_in_message in str(raised.value)


def test_negative_row_count_is_refused() -> None:
    with pytest.raises(FrameError) as raised:
        frame_to_dataframe(frame_pb2.Frame(row_count=-1))
    assert raised.value.column is None
    assert "row_count" in str(raised.value)


def test_frame_error_is_a_value_error_and_pickles() -> None:
    error = FrameError("dtype x is not supported", "age")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.column, str(copy)) == ("age", str(error))
