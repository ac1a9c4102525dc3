"""Bad input over real gRPC calls to a real predictor: each case gets INVALID_ARGUMENT naming
what is wrong, never INTERNAL or UNKNOWN, and the predictor keeps serving.

- infinities in double columns, through each route a frame can take (the frame templates, the
  one-pass all-double decoder, the column-by-column decoder, KServe V2 tensors), and in an
  optional integer column of a PyCaret pipeline;
- request bodies that are not protobuf at all;
- errors naming so many columns, or such long names, that an uncapped status would overflow
  gRPC's 16 KiB metadata limit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import grpc
import numpy as np
import pandas as pd
import pytest
from google.rpc import error_details_pb2, status_pb2
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor
from predictor_registry import Registry

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import frame_pb2, predictor_pb2, predictor_pb2_grpc

#: gRPC's default limit on the metadata a client accepts (grpc.max_metadata_size).
METADATA_LIMIT = 16 * 1024


def predict(predictor: PredictorUnderTest, frame: frame_pb2.Frame) -> predictor_pb2.PredictResponse:
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    return stub.Predict(predictor_pb2.PredictRequest(inputs=frame), timeout=30)


def refusal(predictor: PredictorUnderTest, frame: frame_pb2.Frame) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        predict(predictor, frame)
    return caught.value


def violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations of a refused call, in order."""
    metadata = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    status = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
    assert status.message == error.details()  # type: ignore[attr-defined]
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [(v.field, v.description) for v in bad_request.field_violations]


def percent_encoded_size(text: str) -> int:
    """Bytes of `text` as gRPC sends a status message: UTF-8, percent-encoded outside printable
    ASCII."""
    return sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in text.encode())


def trailing_metadata_bytes(error: grpc.RpcError) -> int:
    """Bytes of the status as it travels in trailers: the message percent-encoded, binary
    values base64-encoded, each entry's name."""
    size = percent_encoded_size(error.details())  # type: ignore[attr-defined]
    for key, value in error.trailing_metadata():  # type: ignore[attr-defined]
        size += len(key) + (len(value) * 4 // 3 + 4 if isinstance(value, bytes) else len(value))
    return size


def with_value(rows: pd.DataFrame, column: str, row: int, value: float) -> pd.DataFrame:
    changed = rows.copy()
    changed.iloc[row, changed.columns.get_loc(column)] = value
    return changed


def refused_count(predictor: PredictorUnderTest, api: str) -> float:
    labels = {"api": api, "model_name": "cancer_rf", "model_version": "1"}
    registry = predictor.running.metrics.registry
    value = registry.get_sample_value(
        "mlp_predictor_requests_total", {**labels, "status": "INVALID_ARGUMENT"}
    )
    return value or 0.0


def assert_still_serving(predictor: PredictorUnderTest, registry: Registry) -> None:
    response = predict(predictor, dataframe_to_frame(registry.cancer_features.head(2)))
    assert len(response.predictions.int64_values.values) == 2


# --- infinities -------------------------------------------------------------------------------


def frame_by_route(rows: pd.DataFrame, route: str) -> frame_pb2.Frame:
    """`rows` as a frame the predictor reads through `route` (see native_codec.py)."""
    if route == "template":  # the model's columns in its order, few rows
        return dataframe_to_frame(rows)
    frame = dataframe_to_frame(rows[list(reversed(rows.columns))])
    if route == "by-column":  # a missing mask, even all False, leaves the one-pass decoder
        frame.columns[0].missing.extend([False] * len(rows))
    return frame


@pytest.mark.parametrize("value", [np.inf, -np.inf], ids=["+inf", "-inf"])
@pytest.mark.parametrize("route", ["template", "one-pass", "by-column"])
@pytest.mark.parametrize("row_count", [1, 3])
def test_an_infinity_in_a_double_column_names_the_column_and_row(
    cancer_predictor: PredictorUnderTest,
    registry: Registry,
    value: float,
    route: str,
    row_count: int,
) -> None:
    last = row_count - 1
    rows = with_value(registry.cancer_features.head(row_count), "mean_texture", last, value)
    error = refusal(cancer_predictor, frame_by_route(rows, route))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    expected = f"row {last} holds {value!r}; expected a finite double"
    assert error.details() == f"column 'mean_texture': {expected}"
    assert violations(error) == [("mean_texture", expected)]
    assert_still_serving(cancer_predictor, registry)


def test_every_infinity_is_counted_and_each_column_named(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    rows = registry.cancer_features.head(5)
    rows = with_value(with_value(rows, "mean_area", 1, np.inf), "mean_area", 3, -np.inf)
    rows = with_value(rows, "worst_area", 0, -np.inf)
    error = refusal(cancer_predictor, dataframe_to_frame(rows))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert dict(violations(error)) == {
        "mean_area": "row 1 holds inf (1 more rows hold infinities); expected a finite double",
        "worst_area": "row 0 holds -inf; expected a finite double",
    }


@pytest.fixture(scope="module")
def pycaret_predictor(
    background_loop: BackgroundLoop, registry: Registry
) -> Iterator[PredictorUnderTest]:
    predictor = start_test_predictor(
        background_loop, "pycaret_lr", registry.tracking_uri, log_predictions=False
    )
    yield predictor
    predictor.stop()


def test_an_infinity_is_refused_in_optional_columns_too(
    pycaret_predictor: PredictorUnderTest, registry: Registry
) -> None:
    """`visits` had gaps in training (it may miss values), yet the pipeline's imputer raises
    on an infinity: it is refused like one in a required column."""
    rows = registry.pycaret_features.iloc[:3].copy()
    rows["visits"] = [np.nan, 2.0, np.inf]
    error = refusal(pycaret_predictor, dataframe_to_frame(rows))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(error) == [("visits", "expected int64, got double inf at row 2")]


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_kserve_v2_infinity_is_an_invalid_argument_naming_the_tensor_and_row(
    cancer_predictor: PredictorUnderTest, registry: Registry, raw: bool
) -> None:
    rows = with_value(registry.cancer_features.head(2), "mean_smoothness", 1, -np.inf)
    request = v2.ModelInferRequest(model_name="cancer_rf")
    for name in rows.columns:
        tensor = request.inputs.add(name=name, datatype="FP64", shape=[len(rows)])
        if raw:
            request.raw_input_contents.append(rows[name].to_numpy("<f8").tobytes())
        else:
            tensor.contents.fp64_contents.extend(rows[name].tolist())
    stub = v2_grpc.GRPCInferenceServiceStub(cancer_predictor.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == [
        ("mean_smoothness", "row 1 holds -inf; expected a finite double")
    ]


# --- bodies that are not protobuf -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "message_name"),
    [
        ("/mlplatform.v1.Predictor/Predict", "mlplatform.v1.PredictRequest"),
        ("/inference.GRPCInferenceService/ModelInfer", "inference.ModelInferRequest"),
        ("/mlplatform.v1.Predictor/GetModelInfo", "mlplatform.v1.GetModelInfoRequest"),
    ],
)
def test_a_body_that_is_not_protobuf_is_an_invalid_argument_logged_once(
    cancer_predictor: PredictorUnderTest,
    registry: Registry,
    caplog: pytest.LogCaptureFixture,
    method: str,
    message_name: str,
) -> None:
    # Bytes protobuf cannot parse: a field tag of number 0 is invalid in any message.
    junk = b"\x00" + os.urandom(256)
    call = cancer_predictor.channel.unary_unary(
        method, request_serializer=None, response_deserializer=None
    )
    api = method.rsplit("/", 1)[1]
    refused_before = refused_count(cancer_predictor, api)
    with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as caught:
        call(junk, timeout=30)
    error = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"request body is not a valid {message_name}"
    request_id = dict(error.trailing_metadata())["x-request-id"]
    assert request_id
    records = [record for record in caplog.records if "not a valid" in record.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info is None and records[0].levelno == logging.WARNING
    assert request_id in records[0].getMessage() and method in records[0].getMessage()
    assert not [record for record in caplog.records if "Unexpected" in record.getMessage()]
    # Counted with the other refused prediction calls (GetModelInfo calls are not counted).
    counted = 0.0 if api == "GetModelInfo" else 1.0
    assert refused_count(cancer_predictor, api) == refused_before + counted
    assert_still_serving(cancer_predictor, registry)


def test_a_well_formed_body_still_reaches_the_handler_through_a_raw_call(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    request = predictor_pb2.PredictRequest(
        inputs=dataframe_to_frame(registry.cancer_features.head(1))
    )
    call = cancer_predictor.channel.unary_unary(
        "/mlplatform.v1.Predictor/Predict", request_serializer=None, response_deserializer=None
    )
    answer = predictor_pb2.PredictResponse.FromString(call(request.SerializeToString(), timeout=30))
    assert answer.model_name == "cancer_rf"


# --- errors that would overflow the metadata limit --------------------------------------------


def test_ten_thousand_unknown_columns_get_a_short_status_naming_them(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    frame = dataframe_to_frame(registry.cancer_features.head(1))
    for index in range(10_000):
        frame.columns.add(name=f"extra_{index}").double_values.values.append(1.0)
    error = refusal(cancer_predictor, frame)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    names = ", ".join(f"'extra_{index}'" for index in range(20))
    assert error.details() == f"columns {names} and 9980 more: not an input of the model"
    listed = violations(error)
    assert listed[:20] == [(f"extra_{index}", "not an input of the model") for index in range(20)]
    assert listed[20:] == [("inputs", "and 9980 more problems, left out of this list")]
    assert trailing_metadata_bytes(error) < METADATA_LIMIT // 4


def test_a_100_kb_column_name_is_cut_in_the_status(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    long_name = "n" * 100_000
    rows = registry.cancer_features.head(1).rename(columns={"mean_radius": long_name})
    frame = dataframe_to_frame(rows)
    error = refusal(cancer_predictor, frame)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    cut = "n" * 63 + "…"
    assert error.details() == (
        f"column {cut!r}: not an input of the model; "
        "column 'mean_radius': missing; expected a double column"
    )
    assert violations(error) == [
        (cut, "not an input of the model"),
        ("mean_radius", "missing; expected a double column"),
    ]
    assert trailing_metadata_bytes(error) < METADATA_LIMIT // 4


def test_a_status_of_long_non_ascii_names_stays_within_the_limit(
    cancer_predictor: PredictorUnderTest, registry: Registry
) -> None:
    """Names of 4-byte characters take 12 bytes each in the percent-encoded message: the
    message is cut by its size as sent, not by its characters."""
    frame = dataframe_to_frame(registry.cancer_features.head(1))
    for index in range(100):
        frame.columns.add(name=f"{index}" + "🙂" * 5_000).double_values.values.append(1.0)
    error = refusal(cancer_predictor, frame)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().endswith("…")
    assert error.details().startswith("columns '0🙂")
    assert len(violations(error)) <= 21
    assert trailing_metadata_bytes(error) < METADATA_LIMIT * 3 // 4
    assert_still_serving(cancer_predictor, registry)
