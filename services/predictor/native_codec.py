"""The native protocol (mlplatform.v1) <-> the prediction core's rows and results.

A small frame of double columns, none missing, is read in one pass into `DoublesRows` (every
protobuf field read builds a Python object); anything else column by column into `Columns`,
the shared codec (`mlplatform.client.frames`) handling text, missing values and their errors.
Probabilities go back as one double column per class, named `str(label)`, in `classes` order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplatform.client.frames import (
    FEW_VALUES,
    FrameError,
    column_to_series,
    dataframe_to_frame,
    repeated_to_array,
    series_to_column,
)
from mlplatform.common.input_schema import ColumnKind, Columns, DoublesRows, ProblemType
from mlplatform.common.model_loading import LoadedModel
from mlplatform.predictor.prediction_service import PredictionResult
from mlplatform.v1 import frame_pb2, pipeline_pb2, predictor_pb2

PREDICTION_COLUMN = "prediction"

_COLUMN_TYPES = {
    ColumnKind.DOUBLE: frame_pb2.COLUMN_TYPE_DOUBLE,
    ColumnKind.INT64: frame_pb2.COLUMN_TYPE_INT64,
    ColumnKind.STRING: frame_pb2.COLUMN_TYPE_STRING,
    ColumnKind.BOOL: frame_pb2.COLUMN_TYPE_BOOL,
}
_PROBLEM_TYPES = {
    ProblemType.CLASSIFICATION: pipeline_pb2.PROBLEM_TYPE_CLASSIFICATION,
    ProblemType.REGRESSION: pipeline_pb2.PROBLEM_TYPE_REGRESSION,
}
# Kinds whose values numpy reads straight from the message when no value is missing.
_PLAIN_KINDS = {"double_values": np.float64, "int64_values": np.int64, "bool_values": np.bool_}
#: Most rows whose `prediction` column is built directly rather than by the shared codec.
_SMALL_OUTPUT_ROWS = 1024


def _all_doubles(frame: frame_pb2.Frame, row_count: int) -> DoublesRows | None:
    """A small frame of double columns with none missing, as one matrix; None for anything
    else, which `decode_frame` reads column by column."""
    if not 0 < row_count < FEW_VALUES:  # beyond, numpy reads each column faster
        return None
    names: list[str] = []
    value_lists: list[list[float]] = []
    for column in frame.columns:
        if column.missing:
            return None
        names.append(column.name)
        value_lists.append(column.double_values.values[:])
    try:
        # A column of another kind holds no doubles: the lists are ragged and numpy refuses.
        by_column = np.array(value_lists, np.float64)
    except ValueError:
        return None
    if by_column.shape != (len(names), row_count) or len(set(names)) != len(names):
        return None
    return DoublesRows(by_column.T, tuple(names))


def _column_values(column: frame_pb2.Column, row_count: int) -> np.ndarray | pd.Series:
    """One column's values: plain numeric columns straight into numpy, the rest through the
    shared codec (a Series)."""
    kind = column.WhichOneof("values")
    dtype = _PLAIN_KINDS.get(kind or "")
    if dtype is not None and not column.missing:
        values = getattr(column, kind).values
        if len(values) == row_count:
            return repeated_to_array(values, dtype)
    return column_to_series(column, row_count)


def decode_frame(frame: frame_pb2.Frame) -> DoublesRows | Columns:
    """The frame's rows, each column decoded and validated; FrameError names a bad column."""
    row_count = frame.row_count
    doubles = _all_doubles(frame, row_count)
    if doubles is not None:
        return doubles
    if row_count < 0:
        raise FrameError(f"row_count is {row_count}; expected a count >= 0")
    columns: dict[str, np.ndarray | pd.Series] = {}
    for column in frame.columns:
        if column.name in columns:
            raise FrameError(
                "name appears more than once; expected unique column names", column.name
            )
        columns[column.name] = _column_values(column, row_count)
    return Columns(columns, row_count)


def encode_prediction_column(predictions: np.ndarray) -> frame_pb2.Column:
    """The `prediction` column. Small outputs of plain kinds are built directly (a few us,
    against tens of us through the shared codec, which packs large outputs faster)."""
    kind = predictions.dtype.kind
    if len(predictions) <= _SMALL_OUTPUT_ROWS:
        values = predictions.tolist()
        if kind == "b":
            return frame_pb2.Column(name=PREDICTION_COLUMN, bool_values={"values": values})
        if kind == "i" or (kind == "u" and predictions.dtype.itemsize < 8):
            return frame_pb2.Column(name=PREDICTION_COLUMN, int64_values={"values": values})
        if kind == "f" and not np.isnan(predictions).any():
            return frame_pb2.Column(name=PREDICTION_COLUMN, double_values={"values": values})
        if kind == "O" and all(type(value) is str for value in values):
            return frame_pb2.Column(name=PREDICTION_COLUMN, string_values={"values": values})
    return series_to_column(PREDICTION_COLUMN, pd.Series(predictions, copy=False))


def encode_response(result: PredictionResult) -> predictor_pb2.PredictResponse:
    """The response for `result`; FrameError when the model's output cannot travel."""
    response = predictor_pb2.PredictResponse(
        model_name=result.model.name,
        model_version=result.model.version,
        request_id=result.request_id,
    )
    response.predictions.CopyFrom(encode_prediction_column(result.predictions))
    probabilities = result.probabilities
    if probabilities is None:
        return response
    if np.isnan(probabilities).any():  # missing values need the generic encoder's mask
        frame = pd.DataFrame(probabilities, columns=list(result.model.class_names), copy=False)
        response.probabilities.CopyFrom(dataframe_to_frame(frame))
        return response
    # Straight from the matrix, a double column per class: through a DataFrame and the generic
    # encoder this is most of a one-row answer once the model itself is compiled.
    response.probabilities.row_count = len(probabilities)
    for position, name in enumerate(result.model.class_names):
        column = response.probabilities.columns.add()
        column.name = name
        column.double_values.values.extend(probabilities[:, position].tolist())
    return response


def encode_model_info(model: LoadedModel) -> predictor_pb2.GetModelInfoResponse:
    return predictor_pb2.GetModelInfoResponse(
        model_name=model.name,
        model_version=model.version,
        alias=model.alias or "",
        problem_type=_PROBLEM_TYPES[model.problem_type],
        classes=list(model.class_names),
        input_schema=[
            frame_pb2.ColumnSchema(
                name=spec.name, type=_COLUMN_TYPES[spec.kind], required=spec.required
            )
            for spec in model.input_schema
        ],
        backend=model.backend,
        compile_reason=model.compile_reason,
    )
