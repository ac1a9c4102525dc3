"""A caller's key column on online predictions: taken from native Predict, V2 ModelInfer (its
`key_column` parameter) and the gateway's REST endpoints, never shown to the model, logged
with each row's prediction, and then found by RecordOutcomes' `prediction_key`.

A real predictor of `cancer_rf` (whose schema has no key column) logs into its own SQLite
store; a real gateway forwards to it. Keys are unique per test, so the tests share the store.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from inference import grpc_predict_v2_pb2 as v2
from inference import grpc_predict_v2_pb2_grpc as v2_grpc
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor, wait_until
from predictor_registry import Registry
from test_bad_input import violations
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.client.frames import column_to_series, dataframe_to_frame
from mlplatform.common.store import Store, open_store
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from gateway_harness import GatewayUnderTest, running_gateway

MODEL = "cancer_rf"
KEY = "order_id"
MISSING_KEY = "missing; it was named as the key column (key_column)"


@dataclass(frozen=True)
class KeyedStack:
    store: Store
    predictor: PredictorUnderTest
    gateway: GatewayUnderTest


@pytest.fixture(scope="module")
def stack(
    background_loop: BackgroundLoop, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeyedStack]:
    root = tmp_path_factory.mktemp("prediction-keys")
    store = open_store(f"sqlite:///{root / 'store.db'}")
    predictor = start_test_predictor(
        background_loop, MODEL, registry.tracking_uri, store=store, metrics_port=-1
    )
    try:
        with running_gateway(predictor.address, root) as gateway:
            yield KeyedStack(store, predictor, gateway)
    finally:
        predictor.stop()
        store.close()


@pytest.fixture(scope="module")
def rows(registry: Registry) -> pd.DataFrame:
    return registry.cancer_features.iloc[:4].reset_index(drop=True)


@pytest.fixture(scope="module")
def unkeyed_predictions(stack: KeyedStack, rows: pd.DataFrame) -> list[object]:
    """What the model answers for `rows` without a key column."""
    response = native_predict(stack, rows, request_id="unkeyed")
    return column_to_series(response.predictions, len(rows)).tolist()


def native_predict(stack: KeyedStack, rows: pd.DataFrame, **fields: object) -> object:
    stub = predictor_pb2_grpc.PredictorStub(stack.predictor.channel)
    request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(rows), **fields)
    return stub.Predict(request, timeout=30)


def with_keys(rows: pd.DataFrame, keys: list[object], at: int = 0) -> pd.DataFrame:
    keyed = rows.copy()
    keyed.insert(at, KEY, keys)
    return keyed


def logged(stack: KeyedStack, request_id: str, count: int) -> list[tuple[str | None, dict]]:
    """(prediction_key, input_row) of each logged row of `request_id`, in row order."""
    wait_until(
        lambda: stack.store.count_predictions(request_id=request_id) == count,
        what=f"{count} logged rows of {request_id}",
    )
    records = sorted(
        stack.store.query_predictions(request_id=request_id), key=lambda r: r.row_index
    )
    return [(record.prediction_key, record.input_row) for record in records]


def label_by_key(stack: KeyedStack, keys: list[str]) -> predictor_pb2.RecordOutcomesResponse:
    stub = predictor_pb2_grpc.PredictorStub(stack.predictor.channel)
    outcomes = [
        predictor_pb2.Outcome(prediction_key=key, model=MODEL, label_int64=1) for key in keys
    ]
    return stub.RecordOutcomes(predictor_pb2.RecordOutcomesRequest(outcomes=outcomes), timeout=30)


def assert_logged_and_labelled(
    stack: KeyedStack, request_id: str, rows: pd.DataFrame, keys: list[str | None]
) -> None:
    records = logged(stack, request_id, len(rows))
    assert [key for key, _ in records] == keys
    for (_, input_row), (_, row) in zip(records, rows.iterrows(), strict=True):
        assert KEY not in input_row
        assert input_row == pytest.approx(row.to_dict())
    present = [key for key in keys if key is not None]
    reply = label_by_key(stack, present)
    assert (reply.matched, reply.labelled, reply.replaced) == (len(present), len(present), 0)


@pytest.mark.parametrize(
    ("keys", "stored", "at"),
    [
        # Text keys: the frame is read column by column (Columns).
        (["n-a", "n-b", "n-c", "n-d"], ["n-a", "n-b", "n-c", "n-d"], 0),
        # Whole-number double keys: the all-double matrix (DoublesRows) loses its last, first
        # or a middle column.
        ([9001.0, 9002.0, 9003.0, 9004.0], ["9001", "9002", "9003", "9004"], 30),
        ([8001.0, 8002.0, 8003.0, 8004.0], ["8001", "8002", "8003", "8004"], 0),
        ([6001.0, 6002.0, 6003.0, 6004.0], ["6001", "6002", "6003", "6004"], 15),
        # A missing key leaves its row without one (the frame is then read column by column).
        ([5001.0, 5002.5, np.nan, 5004.0], ["5001", "5002.5", None, "5004"], 15),
    ],
)
def test_native_predict_logs_each_rows_key_and_outcomes_find_it(
    stack: KeyedStack,
    rows: pd.DataFrame,
    unkeyed_predictions: list[object],
    keys: list[object],
    stored: list[str | None],
    at: int,
) -> None:
    request_id = f"native-{stored[0]}"
    response = native_predict(
        stack, with_keys(rows, keys, at), key_column=KEY, request_id=request_id
    )
    assert column_to_series(response.predictions, len(rows)).tolist() == unkeyed_predictions
    assert_logged_and_labelled(stack, request_id, rows, stored)


def test_native_predict_without_the_named_key_column_is_invalid_argument(
    stack: KeyedStack, rows: pd.DataFrame
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        native_predict(stack, rows, key_column=KEY)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == [(KEY, MISSING_KEY)]


def test_a_key_column_not_named_as_one_is_an_unknown_column(
    stack: KeyedStack, rows: pd.DataFrame
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        native_predict(stack, with_keys(rows, ["u-1", "u-2", "u-3", "u-4"]))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in violations(caught.value)] == [KEY]


def raw_bytes(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(value)) + value.encode() for value in values)


def infer_request(rows: pd.DataFrame, key: list[str] | list[float], request_id: str) -> object:
    """One raw tensor per column plus the key tensor (BYTES or FP64), naming it a key column."""
    request = v2.ModelInferRequest(model_name=MODEL, id=request_id)
    request.parameters["key_column"].string_param = KEY
    for name in rows.columns:
        request.inputs.add(name=name, datatype="FP64", shape=[len(rows)])
        request.raw_input_contents.append(rows[name].to_numpy(np.float64).tobytes())
    text = isinstance(key[0], str)
    request.inputs.add(name=KEY, datatype="BYTES" if text else "FP64", shape=[len(rows)])
    request.raw_input_contents.append(raw_bytes(key) if text else np.asarray(key, "<f8").tobytes())
    request.outputs.add(name="prediction")
    return request


@pytest.mark.parametrize(
    ("keys", "stored"),
    [
        (["v-a", "v-b", "v-c", "v-d"], ["v-a", "v-b", "v-c", "v-d"]),
        ([7001.0, 7002.0, 7003.0, 7004.0], ["7001", "7002", "7003", "7004"]),  # raw doubles
    ],
)
def test_v2_infer_takes_the_key_column_parameter(
    stack: KeyedStack,
    rows: pd.DataFrame,
    unkeyed_predictions: list[object],
    keys: list[object],
    stored: list[str],
) -> None:
    request_id = f"v2-{stored[0]}"
    stub = v2_grpc.GRPCInferenceServiceStub(stack.predictor.channel)
    response = stub.ModelInfer(infer_request(rows, keys, request_id), timeout=30)
    [output] = response.outputs
    predictions = np.frombuffer(response.raw_output_contents[0], "<i8").tolist()
    assert output.name == "prediction" and predictions == unkeyed_predictions
    assert_logged_and_labelled(stack, request_id, rows, stored)


def matrix_request(rows: pd.DataFrame, keys: list[str], request_id: str) -> object:
    """One [rows, columns] FP64 tensor, then the key tensor, naming it a key column."""
    request = v2.ModelInferRequest(model_name=MODEL, id=request_id)
    request.parameters["key_column"].string_param = KEY
    request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(rows.to_numpy(np.float64).tobytes())
    request.inputs.add(name=KEY, datatype="BYTES", shape=[len(keys)])
    request.raw_input_contents.append(raw_bytes(keys))
    request.outputs.add(name="prediction")
    return request


def test_v2_infer_takes_a_key_tensor_beside_the_matrix(
    stack: KeyedStack, rows: pd.DataFrame, unkeyed_predictions: list[object]
) -> None:
    keys = ["m-1", "m-2", "m-3", "m-4"]
    stub = v2_grpc.GRPCInferenceServiceStub(stack.predictor.channel)
    response = stub.ModelInfer(matrix_request(rows, keys, "v2-matrix-keyed"), timeout=30)
    predictions = np.frombuffer(response.raw_output_contents[0], "<i8").tolist()
    assert predictions == unkeyed_predictions
    assert_logged_and_labelled(stack, "v2-matrix-keyed", rows, keys)


def test_v2_infer_refuses_a_key_tensor_that_does_not_fit_the_matrix(
    stack: KeyedStack, rows: pd.DataFrame
) -> None:
    stub = v2_grpc.GRPCInferenceServiceStub(stack.predictor.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(matrix_request(rows, ["m-1", "m-2"], "v2-matrix-short"), timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == [(KEY, "holds 2 keys; the matrix has 4 rows")]


def test_v2_infer_refuses_a_key_column_parameter_that_is_not_text(
    stack: KeyedStack, rows: pd.DataFrame
) -> None:
    request = infer_request(rows, ["x-1", "x-2", "x-3", "x-4"], "v2-bad-parameter")
    request.parameters["key_column"].int64_param = 3
    stub = v2_grpc.GRPCInferenceServiceStub(stack.predictor.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in violations(caught.value)] == ["key_column"]


@pytest.mark.parametrize(
    ("path", "field", "orient"),
    [("/predict", "records", "records"), ("/invocations", "dataframe_split", "split")],
)
def test_rest_takes_key_column_from_the_query(
    stack: KeyedStack,
    rows: pd.DataFrame,
    unkeyed_predictions: list[object],
    path: str,
    field: str,
    orient: str,
) -> None:
    keys = [f"{path}-{row}" for row in range(len(rows))]
    body = {field: with_keys(rows, keys).to_dict(orient)}
    request_id = f"{path[1:]}-keyed"
    reply = stack.gateway.client.post(
        path, params={"key_column": KEY}, json=body, headers={"X-Request-ID": request_id}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"] == unkeyed_predictions
    assert_logged_and_labelled(stack, request_id, rows, keys)


def test_v2_rest_passes_the_key_column_parameter_on(
    stack: KeyedStack, rows: pd.DataFrame, unkeyed_predictions: list[object]
) -> None:
    keys = ["h-1", "h-2", "h-3", "h-4"]
    inputs = [
        {"name": name, "datatype": "FP64", "shape": [len(rows)], "data": rows[name].tolist()}
        for name in rows.columns
    ]
    inputs.append({"name": KEY, "datatype": "BYTES", "shape": [len(rows)], "data": keys})
    reply = stack.gateway.client.post(
        f"/v2/models/{MODEL}/infer",
        json={
            "id": "v2-rest-keyed",
            "parameters": {"key_column": KEY},
            "inputs": inputs,
            "outputs": [{"name": "prediction"}],
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == unkeyed_predictions
    assert_logged_and_labelled(stack, "v2-rest-keyed", rows, keys)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/predict?key_column=order_id", "records", "order_id"),
        ("/invocations?key_column=order_id", "dataframe_records", "order_id"),
    ],
)
def test_rest_without_the_named_key_column_is_400_naming_it(
    stack: KeyedStack, rows: pd.DataFrame, path: str, body: str, field: str
) -> None:
    reply = stack.gateway.client.post(path, json={body: rows.to_dict("records")})
    assert reply.status_code == 400, reply.text
    [detail] = reply.json()["details"]
    assert [(v["field"], v["description"]) for v in detail["fieldViolations"]] == [
        (field, MISSING_KEY)
    ]


def test_v2_rest_refuses_a_key_column_parameter_that_is_not_text(
    stack: KeyedStack, rows: pd.DataFrame
) -> None:
    reply = stack.gateway.client.post(
        f"/v2/models/{MODEL}/infer",
        json={
            "parameters": {"key_column": 5},
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}],
        },
    )
    assert reply.status_code == 400, reply.text
    assert "parameters.key_column" in reply.text


def test_cli_predict_sends_the_key_column(
    stack: KeyedStack, rows: pd.DataFrame, tmp_path: Path
) -> None:
    keys = ["c-1", "c-2", "c-3", "c-4"]
    path = tmp_path / "rows.csv"
    with_keys(rows, keys).to_csv(path, index=False)
    command = ["predict", str(path), "--address", stack.predictor.address, "--key-column", KEY]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    wait_until(
        lambda: (
            {"c-1", "c-4"}
            <= {record.prediction_key for record in stack.store.query_predictions(model_name=MODEL)}
        ),
        what="the CLI's keyed rows logged",
    )
    reply = label_by_key(stack, keys)
    assert (reply.matched, reply.labelled) == (4, 4)
