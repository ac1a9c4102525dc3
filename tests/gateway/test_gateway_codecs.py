"""The gateway's plain functions, without servers: the status table, JSON <-> Frame, MLflow's
request shapes, JSON parsing, settings."""

from __future__ import annotations

import math
import subprocess
import sys

import grpc
import pandas as pd
import pytest
from code_proto_http import CODE_PROTO_HTTP
from hypothesis import given
from hypothesis import strategies as st

from mlplatform.client.frames import column_to_series
from mlplatform.gateway.json_frames import (
    column_from_values,
    column_to_json,
    frame_from_records,
    frame_from_split,
    probabilities_as_rows,
    probabilities_by_class,
)
from mlplatform.gateway.mlflow_formats import parse_invocation
from mlplatform.gateway.responses import dumps
from mlplatform.gateway.rest_codec import parse_json, predict_request
from mlplatform.gateway.settings import GatewaySettings
from mlplatform.gateway.status_mapping import ApiError, http_status_for
from mlplatform.v1 import frame_pb2


def test_every_grpc_status_has_its_code_proto_http_status() -> None:
    assert {code.name: http_status_for(code) for code in grpc.StatusCode} == CODE_PROTO_HTTP


def field_of(error: ApiError) -> str:
    [detail] = error.details
    [violation] = detail["fieldViolations"]
    return str(violation["field"])


# --- JSON -> Frame ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2, None], "int64_values"),
        ([1, 2.5], "double_values"),
        ([None, 0.5], "double_values"),
        ([None, None], "double_values"),
        (["a", None], "string_values"),
        ([True, None, False], "bool_values"),
    ],
)
def test_one_kind_per_column(values: list[object], kind: str) -> None:
    column = column_from_values("c", values)
    assert column.WhichOneof("values") == kind
    assert list(column.missing) == ([value is None for value in values] if None in values else [])


def test_records_keep_column_order_and_treat_absent_keys_as_missing() -> None:
    frame = frame_from_records([{"b": 1.0, "a": "x"}, {"a": "y", "c": True}])
    assert [column.name for column in frame.columns] == ["b", "a", "c"]
    assert frame.row_count == 2
    assert list(frame.columns[0].missing) == [False, True]
    assert list(frame.columns[2].missing) == [True, False]


def test_an_empty_record_list_is_an_empty_frame() -> None:
    frame = frame_from_records([])
    assert frame.row_count == 0 and not frame.columns


def test_split_rows_become_columns() -> None:
    frame = frame_from_split(["a", "b"], [[1, "x"], [2, "y"]])
    assert column_to_json(frame.columns[0]) == [1, 2]
    assert column_to_json(frame.columns[1]) == ["x", "y"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, "x"], "row 1 holds a string"),
        (["x", 1], "row 1 holds a number"),
        ([False, "x"], "row 1 holds a string"),
        ([1, [2]], "row 1 holds an array"),
        ([2**64], "beyond int64"),
        ([1.5, 10**400], "too large for a double"),
    ],
)
def test_mixed_or_unsendable_values_name_the_column_and_row(
    values: list[object], expected: str
) -> None:
    with pytest.raises(ApiError) as refused:
        column_from_values("amount", values)
    assert refused.value.http_status == 400
    assert field_of(refused.value) == "amount"
    assert expected in refused.value.message


scalars = st.one_of(
    st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), min_size=1),
    st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1),
    st.lists(st.one_of(st.none(), st.text()), min_size=1),
    st.lists(st.one_of(st.none(), st.booleans()), min_size=1),
)


def is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(scalars)
def test_a_json_column_decodes_to_its_values(values: list[object]) -> None:
    """What the predictor decodes (the shared codec) is what the JSON said; null is missing."""
    try:
        column = column_from_values("c", values)
    except ApiError:
        # The only refusal here: text protobuf cannot carry (lone surrogates).
        assert any(isinstance(value, str) and not is_utf8(value) for value in values)
        return
    decoded = column_to_series(column, len(values)).tolist()
    for sent, received in zip(values, decoded, strict=True):
        if sent is None:
            assert is_missing(received)
        else:
            assert received == sent


# --- Frame -> JSON ----------------------------------------------------------------------------


def test_missing_and_nan_predictions_are_null() -> None:
    column = frame_pb2.Column(
        double_values={"values": [1.0, 0.0, math.nan]}, missing=[False, True, False]
    )
    assert dumps(column_to_json(column)) == b"[1.0,null,null]"  # NaN is written as null


def test_probabilities_per_row() -> None:
    frame = frame_pb2.Frame(row_count=2)
    frame.columns.add(name="no", double_values={"values": [0.9, 0.2]})
    frame.columns.add(name="yes", double_values={"values": [0.1, 0.8]})
    assert probabilities_by_class(frame) == [{"no": 0.9, "yes": 0.1}, {"no": 0.2, "yes": 0.8}]
    assert probabilities_as_rows(frame) == [[0.9, 0.1], [0.2, 0.8]]


# --- request bodies ---------------------------------------------------------------------------


def test_json_parsing_accepts_nan_and_reports_malformed_input() -> None:
    assert math.isnan(parse_json(b'{"x": NaN}')["x"])
    with pytest.raises(ApiError) as malformed:
        parse_json(b'{"x": ')
    assert field_of(malformed.value) == "body"
    with pytest.raises(ApiError):
        parse_json(b"")
    with pytest.raises(ApiError):
        parse_json(b"[" * 100_000)
    with pytest.raises(ApiError):
        parse_json(b"\xff\xfe{")


def test_predict_request_fields() -> None:
    request = predict_request(
        {"records": [{"x": 1.0}], "model_name": "m", "include_probabilities": True}, "rid"
    )
    assert (request.model_name, request.include_probabilities, request.request_id) == (
        "m",
        True,
        "rid",
    )
    assert request.inputs.row_count == 1


@pytest.mark.parametrize(
    ("document", "rows", "names"),
    [
        ({"dataframe_split": {"columns": ["a"], "data": [[1.0]], "index": [7]}}, 1, ["a"]),
        ({"dataframe_records": [{"a": 1.0}, {"a": 2.0}]}, 2, ["a"]),
        ({"instances": [{"a": 1.0}]}, 1, ["a"]),
        ({"instances": {"a": [1.0, 2.0]}}, 2, ["a"]),
        ({"inputs": {"a": 1.0, "b": "x"}}, 1, ["a", "b"]),
        ({"inputs": [[1.0, 2.0], [3.0, 4.0]]}, 2, ["p", "q"]),
        ({"inputs": [1.0, 2.0, 3.0]}, 3, ["p"]),
        ({"dataframe_split": {"data": [[1.0, 2.0]]}}, 1, ["p", "q"]),
    ],
)
def test_mlflow_request_shapes(document: dict[str, object], rows: int, names: list[str]) -> None:
    invocation = parse_invocation(document)
    frame = invocation.with_column_names(["p", "q"][: len(names)])
    assert frame.row_count == rows
    assert [column.name for column in frame.columns] == names


def test_positional_rows_must_match_the_models_columns() -> None:
    invocation = parse_invocation({"instances": [[1.0, 2.0, 3.0]]})
    with pytest.raises(ApiError) as refused:
        invocation.with_column_names(["a", "b"])
    assert field_of(refused.value) == "instances[0]"
    assert "a, b" in refused.value.message


def test_predict_proba_is_the_only_other_method() -> None:
    assert parse_invocation({"inputs": [[1.0]], "params": {"predict_method": "predict_proba"}})
    with pytest.raises(ApiError):
        parse_invocation({"inputs": [[1.0]], "params": {"predict_method": "transform"}})


# --- settings and command ---------------------------------------------------------------------


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_GATEWAY_PORT", "9100")
    monkeypatch.setenv("MLP_GATEWAY_PREDICTOR", "predictor:50051")
    monkeypatch.setenv("MLP_GATEWAY_REQUEST_TIMEOUT_S", "2.5")
    monkeypatch.setenv("MLP_GATEWAY_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("MLP_API_KEYS", "k1,k2")
    settings = GatewaySettings()
    assert (settings.port, settings.predictor, settings.request_timeout_s) == (
        9100,
        "predictor:50051",
        2.5,
    )
    assert settings.max_body_bytes == 1000
    assert settings.keys == ("k1", "k2")
    assert GatewaySettings(api_keys="").keys == ()


def test_the_command_refuses_invalid_settings() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "mlplatform.cli", "gateway", "--request-timeout", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "request_timeout_s" in refused.stderr
