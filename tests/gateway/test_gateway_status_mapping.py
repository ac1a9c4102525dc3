"""gRPC status -> HTTP status, one test per mapping, each status produced for real where a real
predictor can produce it:

- INVALID_ARGUMENT: rows that do not fit the model (the predictor names the columns), and
  malformed JSON or mixed types (the gateway names the field);
- NOT_FOUND: another model name; UNAVAILABLE: a predictor that is down, and one whose model is
  not loaded; DEADLINE_EXCEEDED: a slow model call past the gateway's deadline; INTERNAL: a
  model that raises (tests/predictor/predictor_model_behaviours.py). UNAUTHENTICATED is in
  test_gateway_auth.py.
- RESOURCE_EXHAUSTED, UNKNOWN (a servicer that raises) and the codes no predictor path
  produces come from a small scripted gRPC server (scripted_predictor.py), through the same
  real gateway process; so does a fault inside the gateway itself (an answer it cannot encode).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pandas as pd
import pytest
from code_proto_http import CODE_PROTO_HTTP
from gateway_data import credit_fraud_features
from gateway_harness import GatewayUnderTest, free_port, running_gateway
from predictor_harness import (
    BackgroundLoop,
    PredictorUnderTest,
    start_test_predictor,
    wait_until,
)
from predictor_model_behaviours import MARKER_FAIL
from scripted_predictor import SECRET, start_scripted_predictor

from mlplatform.client.predictor_client import PredictorClient

BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


def fields_of(body: dict[str, object]) -> list[str]:
    """The offending fields named in an error body's BadRequest details."""
    fields = []
    for detail in body["details"]:  # type: ignore[union-attr]
        assert detail["@type"] == BAD_REQUEST_TYPE
        fields += [violation["field"] for violation in detail["fieldViolations"]]
    return fields


def assert_error(response: object, http_status: int, status: str) -> dict[str, object]:
    """The error body, checked for its shape: code, status, message, details, request id."""
    assert response.status_code == http_status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"code", "status", "message", "details", "request_id"}
    assert body["status"] == status
    assert body["code"] == grpc.StatusCode[status].value[0]
    assert body["request_id"]
    assert "Traceback" not in response.text  # type: ignore[attr-defined]
    return body


def one_row() -> dict[str, object]:
    return credit_fraud_features().iloc[0].to_dict()


# --- INVALID_ARGUMENT (400) -------------------------------------------------------------------


def test_rows_that_do_not_fit_the_model_are_400_with_the_offending_columns(
    gateway: GatewayUnderTest,
) -> None:
    row = one_row()
    del row["V7"]
    row["V99"] = 1.0
    row["Amount"] = "lots"  # a string where the model takes a double
    response = gateway.client.post("/predict", json={"records": [row]})
    body = assert_error(response, 400, "INVALID_ARGUMENT")
    assert set(fields_of(body)) == {"V7", "V99", "Amount"}


def test_malformed_json_is_400(gateway: GatewayUnderTest) -> None:
    response = gateway.client.post(
        "/predict",
        content=b'{"records": [{"V1": 1.0,}]}',
        headers={"content-type": "application/json"},
    )
    body = assert_error(response, 400, "INVALID_ARGUMENT")
    assert fields_of(body) == ["body"]
    assert "malformed JSON" in body["message"]
    assert "line 1 column" in body["message"]


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ([1.5, "two"], "holds a string"),
        (["one", 2], "holds a number"),
        ([True, 1.0], "holds a number"),
        ([1.0, {"nested": 1}], "holds an object"),
        ([[1.0], 2.0], "holds an array"),
        ([2**63, 1], "beyond int64"),
    ],
)
def test_wrong_types_are_400_naming_the_column(
    gateway: GatewayUnderTest, values: list[object], problem: str
) -> None:
    records = [{**one_row(), "V5": value} for value in values]
    response = gateway.client.post("/predict", json={"records": records})
    body = assert_error(response, 400, "INVALID_ARGUMENT")
    assert fields_of(body) == ["V5"]
    assert problem in body["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ({"records": {"V1": 1.0}}, "records"),
        ({"records": [1.0]}, "records[0]"),
        ({"records": [], "columns": []}, "body"),
        ({"columns": ["V1"]}, "data"),
        ({"columns": ["V1", "V1"], "data": [[1.0, 2.0]]}, "columns[1]"),
        ({"columns": ["V1", "V2"], "data": [[1.0]]}, "data[0]"),
        ({"records": [], "include_probabilities": "yes"}, "include_probabilities"),
        ({"records": [], "modelname": "x"}, "modelname"),
    ],
)
def test_wrong_shapes_are_400_naming_the_field(
    gateway: GatewayUnderTest, body: object, field: str
) -> None:
    response = gateway.client.post("/predict", json=body)
    assert fields_of(assert_error(response, 400, "INVALID_ARGUMENT")) == [field]


def test_probabilities_of_a_regression_model_are_400(identity_gateway: GatewayUnderTest) -> None:
    response = identity_gateway.client.post(
        "/predict", json={"records": [{"x": 1.0}], "include_probabilities": True}
    )
    body = assert_error(response, 400, "INVALID_ARGUMENT")
    assert fields_of(body) == ["include_probabilities"]


# --- NOT_FOUND (404) --------------------------------------------------------------------------


def test_another_model_name_is_404(gateway: GatewayUnderTest) -> None:
    response = gateway.client.post("/predict", json={"records": [one_row()], "model_name": "churn"})
    body = assert_error(response, 404, "NOT_FOUND")
    assert "churn" in body["message"] and "credit_fraud" in body["message"]
    assert_error(gateway.client.get("/models/churn"), 404, "NOT_FOUND")


def test_unknown_route_is_404_in_the_same_shape(gateway: GatewayUnderTest) -> None:
    # (Under /v2 the body is V2's: test_gateway_v2_rest.)
    assert_error(gateway.client.get("/nothing-here"), 404, "NOT_FOUND")
    wrong_method = gateway.client.get("/predict")
    assert_error(wrong_method, 405, "UNIMPLEMENTED")
    assert wrong_method.headers["allow"] == "POST"


# --- UNAVAILABLE (503) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway_to_nowhere(gateway_logs: Path) -> Iterator[GatewayUnderTest]:
    """A gateway whose predictor is down (nothing listens on its port)."""
    with running_gateway(f"127.0.0.1:{free_port()}", gateway_logs) as running:
        yield running


def test_a_predictor_that_is_down_is_503_and_the_gateway_stays_live(
    gateway_to_nowhere: GatewayUnderTest,
) -> None:
    response = gateway_to_nowhere.client.post("/predict", json={"records": [one_row()]})
    body = assert_error(response, 503, "UNAVAILABLE")
    assert "127.0.0.1" not in body["message"]  # no internal address in the answer
    assert_error(gateway_to_nowhere.client.get("/models/credit_fraud"), 503, "UNAVAILABLE")
    assert_error(gateway_to_nowhere.client.get("/readyz"), 503, "UNAVAILABLE")
    assert gateway_to_nowhere.client.get("/healthz").status_code == 200


def test_the_gateway_reconnects_when_the_predictor_comes_back(
    gateway_loop: BackgroundLoop, gateway_registry: str, gateway_logs: Path
) -> None:
    """503 while nothing listens; once a predictor starts on that port the same gateway serves
    again within seconds (reconnection backoff is capped at 2 s, not gRPC's 2 minutes)."""
    port = free_port()
    with running_gateway(f"127.0.0.1:{port}", gateway_logs) as gateway:
        for _ in range(3):  # a few failed attempts push the channel's backoff up
            assert_error(gateway.client.get("/readyz"), 503, "UNAVAILABLE")
        predictor = start_test_predictor(
            gateway_loop, "identity", gateway_registry, port=port, metrics_port=-1,
            log_predictions=False,
        )  # fmt: skip
        try:
            started = time.monotonic()
            wait_until(
                lambda: (
                    gateway.client.post("/predict", json={"records": [{"x": 3.0}]}).status_code
                    == 200
                ),
                timeout=10,
                what="the gateway to reach the restarted predictor",
            )
            assert time.monotonic() - started < 5
        finally:
            predictor.stop()


def test_a_predictor_without_a_model_yet_is_503(
    gateway_loop: BackgroundLoop, gateway_registry: str, gateway_logs: Path
) -> None:
    """The predictor is up but its model is not registered: it answers UNAVAILABLE itself."""
    predictor = start_test_predictor(
        gateway_loop, "not_registered_yet", gateway_registry, wait=False, metrics_port=-1
    )
    try:
        with running_gateway(predictor.address, gateway_logs) as gateway:
            response = gateway.client.post("/predict", json={"records": [{"x": 1.0}]})
            body = assert_error(response, 503, "UNAVAILABLE")
            assert "not loaded yet" in body["message"]
            assert_error(gateway.client.get("/readyz"), 503, "UNAVAILABLE")
    finally:
        predictor.stop()


# --- DEADLINE_EXCEEDED (504) ------------------------------------------------------------------


def test_a_model_slower_than_the_deadline_is_504(
    identity_gateway: GatewayUnderTest, identity_predictor: PredictorUnderTest
) -> None:
    """x = -1 makes the model sleep 1 s; the gateway's deadline is 0.5 s."""
    response = identity_gateway.client.post("/predict", json={"records": [{"x": -1.0}]})
    body = assert_error(response, 504, "DEADLINE_EXCEEDED")
    assert "0.5 s" in body["message"]
    # Wait for the model to wake up (a direct call queues behind the sleeping one), so the
    # next test does not meet a busy model.
    with PredictorClient(identity_predictor.address, timeout=10) as client:
        client.predict(pd.DataFrame({"x": [1.0]}))


# --- INTERNAL (500) ---------------------------------------------------------------------------


def test_a_failing_model_is_500_with_the_request_id_only(
    identity_gateway: GatewayUnderTest,
) -> None:
    response = identity_gateway.client.post(
        "/predict", json={"records": [{"x": MARKER_FAIL}]}, headers={"X-Request-ID": "boom-1"}
    )
    body = assert_error(response, 500, "INTERNAL")
    assert body["request_id"] == "boom-1"
    assert "boom-1" in body["message"]
    assert "marker" not in body["message"]  # the model's own error stays in the server log
    assert identity_gateway.client.post("/predict", json={"records": [{"x": 2.0}]}).json()[
        "predictions"
    ] == [2.0]


# --- scripted statuses ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scripted_gateway(
    gateway_loop: BackgroundLoop, gateway_logs: Path
) -> Iterator[GatewayUnderTest]:
    server, address = start_scripted_predictor(gateway_loop)
    try:
        with running_gateway(address, gateway_logs) as running:
            yield running
    finally:
        gateway_loop.run(server.stop(1))


def test_resource_exhausted_is_429(scripted_gateway: GatewayUnderTest) -> None:
    """From the scripted server: no predictor path runs out of a resource on demand."""
    response = scripted_gateway.client.post(
        "/predict", json={"records": [{"x": 1}], "model_name": "RESOURCE_EXHAUSTED"}
    )
    body = assert_error(response, 429, "RESOURCE_EXHAUSTED")
    assert body["message"] == "scripted RESOURCE_EXHAUSTED"


@pytest.mark.parametrize(
    "code", [code for code in grpc.StatusCode if code is not grpc.StatusCode.OK], ids=str
)
def test_every_status_maps_as_grpc_gateway_maps_it(
    scripted_gateway: GatewayUnderTest, code: grpc.StatusCode
) -> None:
    """Every code, through a real gateway, answers the HTTP status of google/rpc/code.proto's
    table (grpc-gateway's), written out independently of the gateway's own."""
    response = scripted_gateway.client.post(
        "/predict",
        json={"records": [{"x": 1}], "model_name": code.name},
        headers={"X-Request-ID": f"scripted-{code.name.lower()}"},
    )
    assert_error(response, CODE_PROTO_HTTP[code.name], code.name)
    assert response.json()["request_id"] == f"scripted-{code.name.lower()}"


def test_a_servicer_that_raises_is_500_without_its_text(
    scripted_gateway: GatewayUnderTest,
) -> None:
    """UNKNOWN carries the exception's text; the gateway answers with the request id only and
    logs the text under it."""
    response = scripted_gateway.client.post(
        "/predict", json={"records": [{"x": 1}], "model_name": "crash"}
    )
    body = assert_error(response, 500, "UNKNOWN")
    assert SECRET not in response.text
    assert body["request_id"] in body["message"]
    assert body["request_id"] in scripted_gateway.log()


def test_a_fault_inside_the_gateway_is_500_with_the_request_id_in_body_and_log(
    scripted_gateway: GatewayUnderTest,
) -> None:
    response = scripted_gateway.client.post(
        "/predict",
        json={"records": [{"x": 1}], "model_name": "bad_output", "include_probabilities": True},
        headers={"X-Request-ID": "gateway-fault-1"},
    )
    body = assert_error(response, 500, "INTERNAL")
    assert body["request_id"] == "gateway-fault-1"
    assert body["message"] == "internal error (request id gateway-fault-1)"
    log = scripted_gateway.log()
    assert "request gateway-fault-1: POST /predict failed" in log
    assert "Traceback" in log  # the traceback is in the log, never in the body


def test_an_unsafe_request_id_is_replaced(scripted_gateway: GatewayUnderTest) -> None:
    response = scripted_gateway.client.post(
        "/predict", json={"records": [{"x": 1}]}, headers={"X-Request-ID": "bad id\twith tab"}
    )
    assert response.status_code == 200
    assert response.json()["request_id"] == response.headers["x-request-id"] != "bad id\twith tab"
