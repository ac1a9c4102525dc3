"""API-key auth (`MLP_API_KEYS`): the gateway refuses `/predict`, `/invocations` and `/models`
without a valid key (401) and forwards the caller's key; the predictor's `ApiKeyInterceptor`
refuses Predictor and KServe V2 calls without one (UNAUTHENTICATED) and leaves health checking
and reflection open. The predictor side runs the real servicers behind the interceptor
(auth_predictor.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pandas as pd
import pytest
from auth_predictor import GuardedPredictor, start_guarded_predictor
from gateway_data import credit_fraud_features
from gateway_harness import GatewayUnderTest, running_gateway
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from inference import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc
from predictor_harness import BackgroundLoop, PredictorUnderTest

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.common.api_keys import ApiKeys, api_keys_from_environment, presented_key
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

KEYS = ("key-one", "key-two")


@pytest.fixture(scope="module")
def row() -> pd.DataFrame:
    return credit_fraud_features().head(1)


@pytest.fixture(scope="module")
def guarded(
    gateway_loop: BackgroundLoop, credit_predictor: PredictorUnderTest
) -> Iterator[GuardedPredictor]:
    guarded = start_guarded_predictor(gateway_loop, credit_predictor.running.service, KEYS)
    yield guarded
    guarded.stop()


@pytest.fixture(scope="module")
def auth_gateway(guarded: GuardedPredictor, gateway_logs: Path) -> Iterator[GatewayUnderTest]:
    """Keys on both sides, as one MLP_API_KEYS setting gives them."""
    with running_gateway(
        guarded.address, gateway_logs, environment={"MLP_API_KEYS": " key-one, key-two "}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def keyless_gateway(guarded: GuardedPredictor, gateway_logs: Path) -> Iterator[GatewayUnderTest]:
    """No keys on the gateway: only the predictor checks, on the key the gateway forwards."""
    with running_gateway(guarded.address, gateway_logs) as running:
        yield running


def predict_body(row: pd.DataFrame) -> dict[str, object]:
    return {"records": row.to_dict(orient="records")}


# --- gateway ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/predict"), ("post", "/invocations"), ("get", "/models/credit_fraud")],
)
def test_no_key_is_401(
    auth_gateway: GatewayUnderTest, row: pd.DataFrame, method: str, path: str
) -> None:
    body = (
        {"dataframe_records": row.to_dict(orient="records")}
        if path == "/invocations"
        else (predict_body(row))
    )
    response = auth_gateway.client.request(method, path, json=body if method == "post" else None)
    assert response.status_code == 401, response.text
    assert response.json()["status"] == "UNAUTHENTICATED"
    assert response.json()["code"] == 16
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer key-three"},
        {"X-API-Key": "key-on"},
        {"Authorization": "Basic a2V5LW9uZQ=="},
        {"Authorization": "Bearer"},
        {"X-API-Key": "key-one\u00e9"},
    ],
    ids=["wrong bearer", "wrong x-api-key", "basic scheme", "empty bearer", "non-ascii"],
)
def test_an_invalid_key_is_401(
    auth_gateway: GatewayUnderTest, row: pd.DataFrame, headers: dict[str, str]
) -> None:
    response = auth_gateway.client.post(
        "/predict", json=predict_body(row), headers={k: v.encode() for k, v in headers.items()}
    )
    assert response.status_code == 401, response.text
    assert response.json()["status"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer key-one"},
        {"authorization": "bearer key-two"},
        {"X-API-Key": "key-two"},
    ],
)
def test_a_valid_key_is_let_through_to_the_guarded_predictor(
    auth_gateway: GatewayUnderTest, row: pd.DataFrame, headers: dict[str, str]
) -> None:
    response = auth_gateway.client.post("/predict", json=predict_body(row), headers=headers)
    assert response.status_code == 200, response.text
    invocations = auth_gateway.client.post(
        "/invocations", json={"dataframe_records": row.to_dict(orient="records")}, headers=headers
    )
    assert invocations.status_code == 200, invocations.text
    assert auth_gateway.client.get("/models/credit_fraud", headers=headers).status_code == 200


def test_kserve_v2_routes_need_a_key_and_answer_in_v2s_error_shape(
    auth_gateway: GatewayUnderTest, row: pd.DataFrame
) -> None:
    infer_body = {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [float(value)]}
            for name, value in row.iloc[0].items()
        ]
    }
    refused = auth_gateway.client.post("/v2/models/credit_fraud/infer", json=infer_body)
    assert refused.status_code == 401, refused.text
    assert set(refused.json()) == {"error"}
    assert auth_gateway.client.get("/v2").status_code == 401
    key = {"X-API-Key": "key-one"}
    answered = auth_gateway.client.post(
        "/v2/models/credit_fraud/infer", json=infer_body, headers=key
    )
    assert answered.status_code == 200, answered.text
    assert auth_gateway.client.get("/v2/models/credit_fraud", headers=key).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/readyz",
        "/ping",
        "/docs",
        "/openapi.json",
        "/v2/health/live",
        "/v2/health/ready",
    ],
)
def test_health_and_docs_stay_open(auth_gateway: GatewayUnderTest, path: str) -> None:
    assert auth_gateway.client.get(path).status_code == 200


def test_the_gateway_forwards_the_callers_key(
    keyless_gateway: GatewayUnderTest, row: pd.DataFrame
) -> None:
    """Without keys of its own the gateway lets the call through; the predictor refuses it
    (UNAUTHENTICATED -> 401) unless the caller's key, forwarded, is valid."""
    refused = keyless_gateway.client.post("/predict", json=predict_body(row))
    assert refused.status_code == 401
    assert "API key is required" in refused.json()["message"]
    accepted = keyless_gateway.client.post(
        "/predict", json=predict_body(row), headers={"X-API-Key": "key-one"}
    )
    assert accepted.status_code == 200, accepted.text


# --- predictor (gRPC) -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def channel(guarded: GuardedPredictor) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(guarded.address) as channel:
        yield channel


def call_predict(
    channel: grpc.Channel, row: pd.DataFrame, metadata: tuple[tuple[str, str], ...] = ()
) -> predictor_pb2.PredictResponse:
    request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(row))
    return predictor_pb2_grpc.PredictorStub(channel).Predict(request, timeout=10, metadata=metadata)


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer nope"),), (("x-api-key", "nope"),)],
    ids=["none", "wrong bearer", "wrong x-api-key"],
)
def test_predictor_refuses_calls_without_a_valid_key(
    channel: grpc.Channel, row: pd.DataFrame, metadata: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        call_predict(channel, row, metadata)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as refused_info:
        predictor_pb2_grpc.PredictorStub(channel).GetModelInfo(
            predictor_pb2.GetModelInfoRequest(), timeout=10, metadata=metadata
        )
    assert refused_info.value.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "metadata", [(("authorization", "Bearer key-one"),), (("x-api-key", "key-two"),)]
)
def test_predictor_serves_calls_with_a_valid_key(
    channel: grpc.Channel, row: pd.DataFrame, metadata: tuple[tuple[str, str], ...]
) -> None:
    assert call_predict(channel, row, metadata).model_name == "credit_fraud"


def test_kserve_v2_is_guarded_too(channel: grpc.Channel) -> None:
    stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
    with pytest.raises(grpc.RpcError) as refused:
        stub.ServerLive(grpc_predict_v2_pb2.ServerLiveRequest(), timeout=10)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    live = stub.ServerLive(
        grpc_predict_v2_pb2.ServerLiveRequest(), timeout=10, metadata=(("x-api-key", "key-one"),)
    )
    assert live.live


def test_health_and_reflection_stay_open(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="mlplatform.v1.Predictor"), timeout=10
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = list(
        reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
    )
    names = {service.name for service in answer.list_services_response.service}
    assert "mlplatform.v1.Predictor" in names


def test_without_keys_the_interceptor_lets_everything_through(
    gateway_loop: BackgroundLoop, credit_predictor: PredictorUnderTest, row: pd.DataFrame
) -> None:
    open_server = start_guarded_predictor(gateway_loop, credit_predictor.running.service, ())
    try:
        with grpc.insecure_channel(open_server.address) as channel:
            assert call_predict(channel, row).model_name == "credit_fraud"
    finally:
        open_server.stop()


# --- key handling -----------------------------------------------------------------------------


def test_keys_from_the_environment() -> None:
    assert api_keys_from_environment({"MLP_API_KEYS": " a, ,b ,"}) == ("a", "b")
    assert api_keys_from_environment({}) == ()


def test_presented_key_prefers_bearer_and_ignores_other_schemes() -> None:
    assert presented_key("Bearer one", "two") == "one"
    assert presented_key("BEARER  one ", None) == "one"
    assert presented_key("Basic abc", "two") == "two"
    assert presented_key(None, None) is None
    assert presented_key("Bearer ", " ") is None


def test_api_keys_accept_only_configured_keys() -> None:
    keys = ApiKeys(["one", "two"])
    assert keys.enabled and keys.accepts("two")
    assert not keys.accepts("tw") and not keys.accepts("twoo") and not keys.accepts(None)
    assert not keys.accepts("\ud800")  # unencodable text is compared, not crashed on
    assert not ApiKeys([]).enabled and not ApiKeys([]).accepts("one")
