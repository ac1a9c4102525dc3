"""A model's input schema and the check every row passes before it reaches the model.

Shared by the online predictor and the batch inferer: both must refuse the same inputs with the
same messages. The check runs on the decoded DataFrame (so it serves frames from the wire and
DataFrames built in process alike) and returns the frame the model gets: the schema's columns, in
the schema's order, with the dtypes scikit-learn pipelines accept. `check_input_rows` returns
all-double rows as `DoublesRows` instead, the same matrix not yet made a DataFrame, so that the
predictor's batcher stacks a batch into one matrix, which a compiled model takes as it is and
scikit-learn as one DataFrame. Decoders that read all-double input straight
into a matrix hand over `DoublesRows` too; the check accepts them as they are when their columns
are the model's, in its order, and otherwise reads them as columns like any other input.

Decisions a caller must know:
- A missing column, an unknown column, a value of the wrong type, an empty frame and a frame with
  more rows than the limit are all refused, every problem at once, each naming its column.
- Integer columns widen to double columns. A double column is accepted for an integer column when
  every value is whole (CSV readers turn integers with blanks into floats).
- "Optional" columns (MLflow's name for a column that had missing values in training) must still
  be present: PyCaret pipelines raise `KeyError` on a column left out. Required columns must have
  a value in every row.
- Infinities (+inf, -inf) are refused in every double column, optional ones included, naming the
  first row that holds one: scikit-learn's input checks (and so every PyCaret pipeline, whose
  imputers run them) raise on them, which the caller would otherwise see as a failed model.
- Every problem is an `InputProblem` of one `InvalidInputError` (input_problems.py), whose
  message stays short however many columns are wrong.
- Nullable integers (pandas "Int64") become float64 with NaN where values are missing, because
  scikit-learn cannot take `pd.NA`.

Longer than ~300 lines on purpose: the predictor and the inferer must refuse the same inputs
with the same messages, so the whole check, all-double path included, stays in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import numpy as np
import pandas as pd

from mlplatform.common.input_problems import InputProblem, InvalidInputError


class ColumnKind(StrEnum):
    """The value kinds a model input column can have (the wire's Frame kinds)."""

    DOUBLE = "double"
    INT64 = "int64"
    STRING = "string"
    BOOL = "bool"


class ProblemType(StrEnum):
    """What a model predicts."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of a model: its name, kind, and whether every row needs a value."""

    name: str
    kind: ColumnKind
    required: bool = True


def describe_dtype(dtype: object) -> str:
    """A dtype as the user thinks of it, for error messages."""
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    kind = getattr(dtype, "kind", "")
    if kind == "f":
        return "double"
    if kind in "iu":
        return "int64"
    if kind == "b":
        return "bool"
    if kind in "OUS" or isinstance(dtype, pd.StringDtype):
        return "string"
    return str(dtype)


ColumnValues = pd.Series | np.ndarray
"""One column as decoded: a Series (any dtype pandas has) or a plain numpy array."""


def _numpy_values(values: ColumnValues) -> np.ndarray | None:
    """The values as a numpy array when their dtype is a numpy one; None for pandas extension
    dtypes (nullable Int64, boolean, string, category), which take the slower pandas path."""
    if isinstance(values, np.ndarray):
        return values
    return values.to_numpy() if isinstance(values.dtype, np.dtype) else None


def _convert_double(values: ColumnValues) -> np.ndarray | None:
    array = _numpy_values(values)
    if array is not None:
        return array.astype(np.float64, copy=False) if array.dtype.kind in "fiu" else None
    if values.dtype.kind in "fiu":  # nullable Int64 / Float64: pd.NA becomes NaN
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return None


def _convert_int64(values: ColumnValues) -> np.ndarray | str | None:
    """int64 values; float64 with NaN when values are missing; an error message for fractions."""
    array = _numpy_values(values)
    if array is None:
        if values.dtype.kind == "b" or values.dtype.kind not in "iuf":
            return None
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if array.dtype.kind in "iu":
        return array
    if array.dtype.kind != "f":
        return None
    missing = np.isnan(array)
    # Infinities too: np.round(inf) == inf, yet no int64 holds one.
    not_whole = ~missing & ((array != np.round(array)) | np.isinf(array))
    if not_whole.any():
        row = int(np.argmax(not_whole))
        return f"expected int64, got double {array[row]!r} at row {row}"
    # Whole numbers: ints when none is missing, else floats with NaN (scikit-learn takes no NA).
    return array.astype(np.float64) if missing.any() else array.astype(np.int64)


def _convert_bool(values: ColumnValues) -> np.ndarray | None:
    array = _numpy_values(values)
    if array is not None:
        return array if array.dtype.kind == "b" else None
    if values.dtype.kind != "b":
        return None
    if values.hasnans:  # nullable "boolean" with missing values: object keeps True/False/NaN
        return values.to_numpy(dtype=object, na_value=np.nan)
    return values.to_numpy(dtype=np.bool_)


def _convert_string(values: ColumnValues) -> np.ndarray | None:
    array = _numpy_values(values)
    if array is not None:
        return array.astype(object, copy=False) if array.dtype.kind in "OU" else None
    if isinstance(values.dtype, pd.CategoricalDtype | pd.StringDtype):
        return values.to_numpy(dtype=object, na_value=None)
    return None


_CONVERTERS = {
    ColumnKind.DOUBLE: _convert_double,
    ColumnKind.INT64: _convert_int64,
    ColumnKind.BOOL: _convert_bool,
    ColumnKind.STRING: _convert_string,
}


def _first_missing_row(values: np.ndarray) -> int | None:
    """The first row without a value, or None when every row has one."""
    if values.dtype.kind == "f":
        missing = np.isnan(values)
    elif values.dtype.kind == "O":
        missing = pd.isna(values)
    else:
        return None
    return int(np.argmax(missing)) if missing.any() else None


def _infinity_problem(values: np.ndarray) -> str | None:
    """What is wrong with a double column holding infinities; None when it holds none."""
    infinite = np.isinf(values)
    if not infinite.any():
        return None
    row = int(np.argmax(infinite))
    count = int(infinite.sum())
    others = f" ({count - 1} more rows hold infinities)" if count > 1 else ""
    return f"row {row} holds {values[row]!r}{others}; expected a finite double"


@lru_cache(maxsize=64)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    """The columns Index of a schema, built once: building it per request costs more than
    the check."""
    return pd.Index(names)


def _as_frame(converted: dict[str, np.ndarray], row_count: int) -> pd.DataFrame:
    """The model's frame. Same-dtype columns go into one 2-d block: building it and handing it
    to scikit-learn both cost a fraction of one block per column."""
    arrays = list(converted.values())
    index = pd.RangeIndex(row_count)
    first_dtype = arrays[0].dtype if arrays else None
    if (
        first_dtype is not None
        and first_dtype.kind != "O"
        and all(a.dtype == first_dtype for a in arrays)
    ):
        columns = _column_index(tuple(converted))
        return pd.DataFrame(np.column_stack(arrays), columns=columns, index=index, copy=False)
    return pd.DataFrame(converted, index=index, copy=False)


@dataclass(frozen=True, eq=False)
class DoublesLayout:
    """What the all-double fast path needs from a schema whose columns are all doubles, worked
    out once per model: deriving it from the schema on every request costs more than the
    check itself."""

    names: tuple[str, ...]
    columns: pd.Index
    #: Which columns need a value in every row; None when all of them do.
    required: np.ndarray | None

    @classmethod
    def of(cls, schema: Sequence[ColumnSpec]) -> DoublesLayout | None:
        """The layout of `schema`, or None when a column is not a double."""
        if not schema or any(spec.kind is not ColumnKind.DOUBLE for spec in schema):
            return None
        names = tuple(spec.name for spec in schema)
        required = np.array([spec.required for spec in schema], dtype=bool)
        return cls(names, _column_index(names), None if required.all() else required)

    def accepts(self, matrix: np.ndarray) -> bool:
        """Whether `matrix` holds no infinity and a value in every row of every required
        column (NaN is a missing value)."""
        if np.isfinite(matrix).all():  # the usual case: one pass
            return True
        if self.required is None or np.isinf(matrix).any():
            return False
        return not np.isnan(matrix[:, self.required]).any()


@dataclass(frozen=True, eq=False)
class DoublesRows:
    """All-double rows as one float64 (rows, columns) matrix and its column names.

    The one all-double representation: decoders read such input straight into it, the check
    passes it on unchanged when it fits the model, and the batcher stacks the matrices of a
    batch into one, which a compiled model takes as it is and scikit-learn as one DataFrame per
    model call (a DataFrame per request costs more than the check). `columns`, `to_numpy()`
    and `len()` answer like the DataFrame's, for the prediction log.
    """

    matrix: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def columns(self) -> pd.Index:
        return _column_index(self.names)

    def to_numpy(self) -> np.ndarray:
        return self.matrix

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.matrix, columns=self.columns, index=pd.RangeIndex(len(self.matrix)), copy=False
        )

    def to_columns(self) -> Columns:
        """The same values as columns (views, not copies), for the general check."""
        return Columns(dict(zip(self.names, self.matrix.T, strict=True)), len(self.matrix))


#: What the check hands on: a DataFrame, or all-double rows not yet made into one.
CheckedRows = pd.DataFrame | DoublesRows


def as_frame(rows: CheckedRows) -> pd.DataFrame:
    """`rows` as the DataFrame the model takes."""
    return rows.to_frame() if isinstance(rows, DoublesRows) else rows


def _all_doubles_fast(features: Columns | DoublesRows, layout: DoublesLayout) -> DoublesRows | None:
    """The common all-numeric case in one vectorised pass, or None to take the general path.

    Applies when the input is the model's columns in its order as one matrix, or every column
    arrives as a float64 array; anything missing, unknown, extra or out of range is left to the
    general path, which names it.
    """
    if isinstance(features, DoublesRows):
        fits = features.names == layout.names and len(features.matrix) > 0
        return features if fits and layout.accepts(features.matrix) else None
    columns = features.values
    if len(columns) != len(layout.names) or features.row_count == 0:
        return None
    arrays = []
    for name in layout.names:
        values = columns.get(name)
        if not isinstance(values, np.ndarray) or values.dtype != np.float64:
            return None
        arrays.append(values)
    matrix = np.column_stack(arrays)
    return DoublesRows(matrix, layout.names) if layout.accepts(matrix) else None


@dataclass(frozen=True)
class Columns:
    """Decoded input columns by name, and the row count (a frame may have no columns)."""

    values: Mapping[str, ColumnValues]
    row_count: int

    @classmethod
    def of(cls, features: pd.DataFrame) -> Columns:
        """The columns of a DataFrame."""
        return cls(dict(features.items()), len(features))

    def __len__(self) -> int:
        return self.row_count


def check_input(
    features: pd.DataFrame | Columns | DoublesRows,
    schema: Sequence[ColumnSpec],
    max_rows: int | None = None,
    layout: DoublesLayout | None = None,
) -> pd.DataFrame:
    """The frame the model gets, or InvalidInputError naming every offending column.

    The result holds the schema's columns in the schema's order with a fresh RangeIndex.
    Decoders hand over `Columns` rather than a DataFrame: building a DataFrame only to take it
    apart again costs more than the check.
    """
    return as_frame(check_input_rows(features, schema, max_rows, layout))


def check_input_rows(
    features: pd.DataFrame | Columns | DoublesRows,
    schema: Sequence[ColumnSpec],
    max_rows: int | None = None,
    layout: DoublesLayout | None = None,
) -> CheckedRows:
    """`check_input`, except that all-double rows come back as `DoublesRows`, not yet a
    DataFrame (the predictor's batcher builds one DataFrame for a whole batch)."""
    if isinstance(features, pd.DataFrame):
        features = Columns.of(features)
    if layout is None:
        layout = DoublesLayout.of(schema)
    if layout is not None and (max_rows is None or len(features) <= max_rows):
        fast = _all_doubles_fast(features, layout)
        if fast is not None:
            return fast
    if isinstance(features, DoublesRows):
        features = features.to_columns()
    columns, row_count = features.values, features.row_count
    problems: list[InputProblem] = []
    if row_count == 0:
        problems.append(InputProblem(None, "the frame has no rows; expected at least one"))
    elif max_rows is not None and row_count > max_rows:
        problems.append(
            InputProblem(None, f"the frame has {row_count} rows; the limit is {max_rows}")
        )
    expected_names = {spec.name for spec in schema}
    problems.extend(
        InputProblem(str(name), "not an input of the model")
        for name in columns
        if name not in expected_names
    )
    converted: dict[str, np.ndarray] = {}
    for spec in schema:
        values = columns.get(spec.name)
        if values is None:
            problems.append(InputProblem(spec.name, f"missing; expected a {spec.kind} column"))
            continue
        array = _CONVERTERS[spec.kind](values)
        if array is None:
            got = describe_dtype(values.dtype)
            problems.append(InputProblem(spec.name, f"expected {spec.kind}, got {got}"))
        elif isinstance(array, str):
            problems.append(InputProblem(spec.name, array))
        elif spec.kind is ColumnKind.DOUBLE and (infinity := _infinity_problem(array)):
            problems.append(InputProblem(spec.name, infinity))
        elif spec.required and (row := _first_missing_row(array)) is not None:
            problems.append(
                InputProblem(
                    spec.name,
                    f"has missing values (the first at row {row}); expected a {spec.kind} in "
                    "every row (the column had none in training)",
                )
            )
        else:
            converted[spec.name] = array
    if problems:
        raise InvalidInputError(problems)
    return _as_frame(converted, row_count)
