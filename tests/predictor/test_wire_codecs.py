"""Wire decoding and encoding of the predictor (plain functions): the Predictor service's Frame
fast paths against the shared codec, and the KServe V2 tensor codec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from inference import grpc_predict_v2_pb2 as v2

from mlplatform.client.frames import FrameError, column_to_series, dataframe_to_frame
from mlplatform.common.input_schema import Columns, DoublesRows
from mlplatform.predictor.kserve_codec import request_to_columns
from mlplatform.predictor.kserve_tensors import (
    decode_bytes_elements,
    encode_bytes_elements,
    encode_output,
)
from mlplatform.predictor.native_codec import decode_frame, encode_prediction_column
from mlplatform.v1 import frame_pb2


def test_decoded_columns_match_the_codec_whatever_path_they_take() -> None:
    rows = pd.DataFrame(
        {
            "amount": [1.5, 2.5, 3.5],
            "gappy": [1.0, np.nan, 3.0],
            "count": np.array([1, 2, 3]),
            "nullable": pd.array([1, None, 3], dtype="Int64"),
            "flag": [True, False, True],
            "text": ["a", None, "c"],
        }
    )
    frame = dataframe_to_frame(rows)
    decoded = decode_frame(frame)
    assert isinstance(decoded, Columns) and decoded.row_count == 3
    for column in frame.columns:
        expected = column_to_series(column, 3)
        pd.testing.assert_series_equal(
            pd.Series(decoded.values[column.name], name=column.name), expected, check_names=False
        )
    assert isinstance(decoded.values["amount"], np.ndarray)  # the plain fast path


def doubles(rows: int, columns: int = 3) -> pd.DataFrame:
    values = np.arange(rows * columns, dtype=np.float64).reshape(rows, columns) / 7
    return pd.DataFrame(values, columns=[f"f{index}" for index in range(columns)])


@pytest.mark.parametrize("rows", [1, 8, 63, 64, 200])
def test_an_all_double_frame_decodes_to_the_same_values_as_the_codec(rows: int) -> None:
    """Small all-double frames are read into one matrix; larger ones column by column."""
    features = doubles(rows)
    decoded = decode_frame(dataframe_to_frame(features))
    assert len(decoded) == rows
    assert isinstance(decoded, DoublesRows) == (rows < 64)
    if isinstance(decoded, DoublesRows):
        assert decoded.names == tuple(features.columns)
        np.testing.assert_array_equal(decoded.matrix, features.to_numpy())
    else:
        for name in features.columns:
            np.testing.assert_array_equal(decoded.values[name], features[name].to_numpy())


def test_frames_the_matrix_path_cannot_take_fall_back_to_the_checked_path() -> None:
    """A missing value, a column of another kind, a short column and a repeated name are all
    decoded (or refused) exactly as the codec does, never read as a plain matrix."""
    gappy = dataframe_to_frame(pd.DataFrame({"a": [1.0, np.nan], "b": [2.0, 3.0]}))
    decoded = decode_frame(gappy)
    assert isinstance(decoded, Columns)
    assert np.isnan(decoded.values["a"][1])
    mixed = dataframe_to_frame(pd.DataFrame({"a": [1.0, 2.0], "n": np.array([1, 2])}))
    decoded = decode_frame(mixed)
    assert isinstance(decoded, Columns) and decoded.values["n"].dtype == np.int64
    short = dataframe_to_frame(doubles(2))
    short.columns[1].double_values.values.pop()
    with pytest.raises(FrameError, match="expected 2"):
        decode_frame(short)
    repeated = dataframe_to_frame(doubles(1, 2))
    repeated.columns[1].name = "f0"
    with pytest.raises(FrameError, match="more than once"):
        decode_frame(repeated)


def test_a_short_column_is_named_by_the_decoder() -> None:
    frame = frame_pb2.Frame(row_count=2)
    frame.columns.add(name="amount").double_values.values.append(1.0)
    with pytest.raises(FrameError) as caught:
        decode_frame(frame)
    assert caught.value.column == "amount"


def test_duplicate_columns_are_refused() -> None:
    frame = dataframe_to_frame(pd.DataFrame({"a": [1.0]}))
    frame.columns.add().CopyFrom(frame.columns[0])
    with pytest.raises(FrameError, match="more than once"):
        decode_frame(frame)


@pytest.mark.parametrize(
    "predictions",
    [
        np.array([1, 0, 1]),
        np.array([0.5, 1.5]),
        np.array([0.5, np.nan]),
        np.array([True, False]),
        np.array(["benign", "malignant"], dtype=object),
        np.arange(2000, dtype=np.float64),
    ],
)
def test_prediction_column_decodes_to_the_predictions(predictions: np.ndarray) -> None:
    column = encode_prediction_column(predictions)
    assert column.name == "prediction"
    decoded = column_to_series(column, len(predictions))
    np.testing.assert_array_equal(decoded.to_numpy(), predictions)


def test_raw_bytes_elements_round_trip() -> None:
    values = [b"", b"retail", "caf\u00e9".encode()]
    assert decode_bytes_elements(encode_bytes_elements(values), "segment") == values
    with pytest.raises(FrameError, match="ends inside"):
        decode_bytes_elements(b"\x05\x00\x00\x00ab", "segment")


def test_v2_request_decodes_raw_and_typed_tensors() -> None:
    request = v2.ModelInferRequest(model_name="m")
    request.inputs.add(name="amount", datatype="FP32", shape=[2, 1])
    request.inputs.add(name="segment", datatype="BYTES", shape=[2])
    request.raw_input_contents.append(np.array([1.5, 2.5], dtype="<f4").tobytes())
    request.raw_input_contents.append(encode_bytes_elements([b"a", b"b"]))
    columns = request_to_columns(request)
    assert columns.row_count == 2
    assert columns.values["amount"].tolist() == [1.5, 2.5]
    assert columns.values["segment"].tolist() == ["a", "b"]

    typed = v2.ModelInferRequest(model_name="m")
    tensor = typed.inputs.add(name="count", datatype="INT32", shape=[3])
    tensor.contents.int_contents.extend([1, 2, 3])
    assert request_to_columns(typed).values["count"].tolist() == [1, 2, 3]


def test_v2_row_counts_must_agree() -> None:
    request = v2.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
    request.inputs.add(name="b", datatype="FP64", shape=[2]).contents.fp64_contents.extend([1, 2])
    with pytest.raises(FrameError) as caught:
        request_to_columns(request)
    assert caught.value.column == "b"


def test_v2_outputs_are_raw_little_endian() -> None:
    tensor, raw = encode_output("probabilities", np.array([[0.25, 0.75], [1.0, 0.0]]))
    assert (tensor.datatype, list(tensor.shape)) == ("FP64", [2, 2])
    assert np.frombuffer(raw, "<f8").tolist() == [0.25, 0.75, 1.0, 0.0]
    tensor, raw = encode_output("prediction", np.array(["low", "high"], dtype=object))
    assert tensor.datatype == "BYTES"
    assert decode_bytes_elements(raw, "prediction") == [b"low", b"high"]
