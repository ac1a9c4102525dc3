"""JSON rows <-> `mlplatform.v1.Frame`, for the REST endpoints.

Rows arrive as parsed JSON (dicts and lists from orjson) and become a Frame directly, column by
column, without a pandas DataFrame in between: building one costs more than the whole gRPC call
for a single row. Type rules, per column (JSON has one number type; orjson keeps integers apart):

- integers only -> int64; integers and fractions -> double;
- strings -> string; booleans -> bool;
- null is a missing value in any column (the Frame's missing mask); a column of nulls only
  travels as double, as pandas would read it;
- anything else (a column mixing strings and numbers, an object or array as a value, an integer
  beyond int64) is refused as INVALID_ARGUMENT naming the column and the first offending row.

Whether the columns fit the model is the predictor's call: it answers with every offending column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlplatform.gateway.status_mapping import ApiError, invalid_argument
from mlplatform.v1 import frame_pb2

_NONE = type(None)
_JSON_TYPE_NAMES = {
    int: "a number",
    float: "a number",
    str: "a string",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
}
_ONE_TYPE = "a column holds one type: numbers, strings or booleans (null where missing)"


def _describe(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _mixed_types_error(name: str, values: Sequence[object]) -> ApiError:
    first = next(value for value in values if value is not None)
    for row, value in enumerate(values):
        if value is None:
            continue
        if isinstance(value, dict | list):
            return invalid_argument(
                name, f"row {row} holds {_describe(value)}; expected a number, string or boolean"
            )
        # int and float are both "a number"; anything else differing from the first value is
        # the mix.
        if _describe(value) != _describe(first):
            return invalid_argument(
                name,
                f"row {row} holds {_describe(value)} ({value!r:.40}) but earlier rows hold "
                f"{_describe(first)}; {_ONE_TYPE}",
            )
    return invalid_argument(name, _ONE_TYPE)  # not reached for a genuinely mixed column


_FLOAT_KINDS = ({float}, {int, float})


def _filled(values: Sequence[object], has_missing: bool, default: object) -> Sequence[object]:
    """`values` with `default` in the missing slots (the mask says which they are)."""
    if not has_missing:
        return values
    return [default if value is None else value for value in values]


def fill_column(column: frame_pb2.Column, name: str, values: Sequence[object]) -> None:
    """Fill `column` (in place: appending a finished Column to a Frame would copy its values)
    from a column's JSON values; ApiError naming `name` when they do not make one typed
    column."""
    kinds = set(map(type, values))
    has_missing = _NONE in kinds
    if has_missing:
        kinds.discard(_NONE)
    try:
        column.name = name
    except ValueError:  # lone surrogates: protobuf strings are UTF-8
        raise invalid_argument(ascii(name), "the column name is not valid Unicode text") from None
    try:
        # Doubles first: the common case (numeric features) decides in one comparison.
        if kinds in _FLOAT_KINDS:
            column.double_values.values.extend(_filled(values, has_missing, 0.0))
        elif kinds == {int}:
            column.int64_values.values.extend(_filled(values, has_missing, 0))
        elif kinds == {str}:
            column.string_values.values.extend(_filled(values, has_missing, ""))
        elif kinds == {bool}:
            column.bool_values.values.extend(_filled(values, has_missing, False))
        elif not kinds:
            column.double_values.values.extend([0.0] * len(values))
            column.double_values.SetInParent()  # zero rows of nulls: the kind is still set
        else:
            raise _mixed_types_error(name, values)
    except (ValueError, OverflowError) as error:
        raise _value_error(name, values, kinds, error) from None
    if has_missing:
        column.missing.extend([value is None for value in values])


def column_from_values(name: str, values: Sequence[object]) -> frame_pb2.Column:
    """One Frame column from a column's JSON values (see `fill_column`)."""
    column = frame_pb2.Column()
    fill_column(column, name, values)
    return column


def _value_error(
    name: str, values: Sequence[object], kinds: set[type], error: Exception
) -> ApiError:
    """The ApiError of a value protobuf refused: an integer beyond int64, unencodable text."""
    if int in kinds:
        for row, value in enumerate(values):
            if type(value) is int and not -(2**63) <= value < 2**63:
                if kinds == {int}:
                    return invalid_argument(
                        name, f"row {row} holds {value}, beyond int64; expected integers in int64"
                    )
                return invalid_argument(name, f"row {row} holds {value}, too large for a double")
    if str in kinds:
        return invalid_argument(name, f"holds text that is not valid Unicode ({error})")
    return invalid_argument(name, f"holds a value that cannot be sent ({error})")


def _check_name(name: object, field: str) -> str:
    if not isinstance(name, str):
        raise invalid_argument(field, f"a column name must be a string, got {_describe(name)}")
    return name


def frame_from_columns(
    names: Sequence[str],
    columns: Sequence[Sequence[object]],
    into: frame_pb2.Frame | None = None,
) -> frame_pb2.Frame:
    """A Frame (`into`, filled in place, or a new one) from column names and each column's
    values (all of one length)."""
    frame = frame_pb2.Frame() if into is None else into
    frame.row_count = len(columns[0]) if columns else 0
    for name, values in zip(names, columns, strict=True):
        fill_column(frame.columns.add(), name, values)
    return frame


def frame_from_records(
    records: object, field: str = "records", into: frame_pb2.Frame | None = None
) -> frame_pb2.Frame:
    """A Frame from `[{"col": value, ...}, ...]`; a key absent from a row is a missing value."""
    if not isinstance(records, list):
        raise invalid_argument(field, f"expected an array of row objects, got {_describe(records)}")
    names: dict[str, None] = {}
    first_keys = None
    for row_index, row in enumerate(records):
        if not isinstance(row, dict):
            raise invalid_argument(
                f"{field}[{row_index}]", f"expected a row object, got {_describe(row)}"
            )
        # Rows usually share their keys: compare key views (a set comparison in C) and only
        # collect the union when they differ.
        if first_keys is None or row.keys() != first_keys:
            first_keys = first_keys or row.keys()
            names.update(dict.fromkeys(row))
    columns = [[row.get(name) for row in records] for name in names]
    frame = frame_from_columns(list(names), columns, into)
    frame.row_count = len(records)
    return frame


def frame_from_split(
    columns: object,
    data: object,
    columns_field: str = "columns",
    data_field: str = "data",
    into: frame_pb2.Frame | None = None,
) -> frame_pb2.Frame:
    """A Frame from `{"columns": [names], "data": [[row values], ...]}`."""
    if not isinstance(columns, list):
        raise invalid_argument(
            columns_field, f"expected an array of column names, got {_describe(columns)}"
        )
    names = [_check_name(name, f"{columns_field}[{i}]") for i, name in enumerate(columns)]
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise invalid_argument(
                f"{columns_field}[{index}]", f"{name!r} appears more than once; names are unique"
            )
        seen.add(name)
    rows = rows_of(data, data_field, len(names))
    values = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in names]
    frame = frame_from_columns(names, values, into)
    frame.row_count = len(rows)
    return frame


def rows_of(data: object, field: str, width: int) -> list[list[object]]:
    """`data` checked as an array of rows of `width` values each."""
    if not isinstance(data, list):
        raise invalid_argument(field, f"expected an array of rows, got {_describe(data)}")
    for index, row in enumerate(data):
        if not isinstance(row, list):
            raise invalid_argument(
                f"{field}[{index}]", f"expected an array of values, got {_describe(row)}"
            )
        if len(row) != width:
            raise invalid_argument(
                f"{field}[{index}]", f"holds {len(row)} values; expected {width} (one per column)"
            )
    return data


def frame_from_column_mapping(mapping: dict[str, Any], field: str) -> frame_pb2.Frame:
    """A Frame from `{"col": [values...], ...}` (every list one length), or from
    `{"col": value, ...}` (one row)."""
    names = [_check_name(name, field) for name in mapping]
    values = list(mapping.values())
    if values and all(not isinstance(value, list) for value in values):
        return frame_from_columns(names, [[value] for value in values])
    lengths = set()
    for name, column in zip(names, values, strict=True):
        if not isinstance(column, list):
            raise invalid_argument(
                f"{field}.{name}",
                f"expected an array of values (one per row), got {_describe(column)}",
            )
        lengths.add(len(column))
    if len(lengths) > 1:
        raise invalid_argument(
            field, f"columns have different lengths {sorted(lengths)}; expected one"
        )
    return frame_from_columns(names, values)


# --- responses --------------------------------------------------------------------------------


def column_to_json(column: frame_pb2.Column) -> list[Any]:
    """A column's values as JSON values; missing values (and NaN) become null."""
    kind = column.WhichOneof("values")
    if kind is None:
        return []
    values: list[Any] = list(getattr(column, kind).values)
    if column.missing:
        values = [
            None if missing else value
            for value, missing in zip(values, column.missing, strict=False)
        ]
    # NaN and infinities need no pass here: orjson writes them as null.
    return values


def probabilities_by_class(frame: frame_pb2.Frame) -> list[dict[str, Any]]:
    """One `{class: probability}` object per row."""
    names = [column.name for column in frame.columns]
    columns = [column_to_json(column) for column in frame.columns]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def probabilities_as_rows(frame: frame_pb2.Frame) -> list[list[Any]]:
    """One list of probabilities per row, in class order (what scikit-learn's predict_proba
    returns, and so what MLflow's scoring server answers for it)."""
    columns = [column_to_json(column) for column in frame.columns]
    return [list(row) for row in zip(*columns, strict=True)]
