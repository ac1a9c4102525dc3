"""`POST /predict`, `GET /models/{name}`, health and docs, through a real gateway to a real
predictor serving `credit_fraud`; REST answers are compared with direct gRPC answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from gateway_data import credit_fraud_features
from gateway_harness import GatewayUnderTest
from predictor_harness import PredictorUnderTest

from mlplatform.client.predictor_client import PredictorClient


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return credit_fraud_features().iloc[[0, 1, 2, 40]].reset_index(drop=True)


@pytest.fixture(scope="module")
def direct_answer(credit_predictor: PredictorUnderTest, rows: pd.DataFrame) -> pd.DataFrame:
    """What the predictor answers over gRPC: the reference for every REST answer."""
    with PredictorClient(credit_predictor.address) as client:
        return client.predict(rows, include_probabilities=True).to_dataframe()


def records_of(rows: pd.DataFrame) -> list[dict[str, object]]:
    return rows.to_dict(orient="records")


def test_records_in_predictions_out_as_the_predictor_answers_them(
    gateway: GatewayUnderTest, rows: pd.DataFrame, direct_answer: pd.DataFrame
) -> None:
    response = gateway.client.post(
        "/predict", json={"records": records_of(rows)}, headers={"X-Request-ID": "req-42"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == direct_answer["prediction"].tolist()
    assert body["model_name"] == "credit_fraud"
    assert body["model_version"] == "1"
    assert body["request_id"] == "req-42"
    assert response.headers["x-request-id"] == "req-42"
    assert "probabilities" not in body


def test_column_split_form_gives_the_same_answer(
    gateway: GatewayUnderTest, rows: pd.DataFrame, direct_answer: pd.DataFrame
) -> None:
    split = rows.to_dict(orient="split")
    response = gateway.client.post(
        "/predict", json={"columns": split["columns"], "data": split["data"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == direct_answer["prediction"].tolist()
    # No X-Request-ID sent: the gateway makes one and it is the predictor's too.
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert len(response.json()["request_id"]) == 32


def test_probabilities_on_request_one_object_per_row(
    gateway: GatewayUnderTest, rows: pd.DataFrame, direct_answer: pd.DataFrame
) -> None:
    response = gateway.client.post(
        "/predict",
        json={
            "records": records_of(rows),
            "include_probabilities": True,
            "model_name": "credit_fraud",
        },
    )
    assert response.status_code == 200, response.text
    probabilities = response.json()["probabilities"]
    assert len(probabilities) == len(rows)
    for index, by_class in enumerate(probabilities):
        assert set(by_class) == {"0", "1"}
        assert math.isclose(sum(by_class.values()), 1.0)
        for label, probability in by_class.items():
            assert probability == pytest.approx(direct_answer[label][index])


def test_missing_values_travel_as_null(gateway: GatewayUnderTest, rows: pd.DataFrame) -> None:
    """null is a missing value; the predictor refuses it for a column that had none in
    training, naming the column, which shows it arrived as missing (not as 0 or a string)."""
    record = records_of(rows.head(1))[0]
    record["V3"] = None
    response = gateway.client.post("/predict", json={"records": [record]})
    assert response.status_code == 400
    [detail] = response.json()["details"]
    assert [violation["field"] for violation in detail["fieldViolations"]] == ["V3"]
    assert "missing" in detail["fieldViolations"][0]["description"]


def test_model_info(gateway: GatewayUnderTest) -> None:
    response = gateway.client.get("/models/credit_fraud")
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["model_name"] == "credit_fraud"
    assert info["model_version"] == "1"
    assert info["alias"] == "production"
    assert info["problem_type"] == "classification"
    assert info["classes"] == ["0", "1"]
    assert [column["name"] for column in info["input_schema"]] == list(credit_fraud_features())
    assert {column["type"] for column in info["input_schema"]} == {"double"}
    # A scaler and a forest compile: ONNX Runtime answers.
    assert (info["backend"], info["compile_reason"]) == ("onnxruntime", "")


def test_health_and_readiness(gateway: GatewayUnderTest) -> None:
    assert gateway.client.get("/healthz").json() == {"status": "ok"}
    ready = gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "predictor": "SERVING"}
    assert gateway.client.get("/ping").status_code == 200


def test_docs_are_served(gateway: GatewayUnderTest) -> None:
    docs = gateway.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text.lower()
    schema = gateway.client.get("/openapi.json").json()
    for path in ("/predict", "/invocations", "/models/{name}", "/healthz", "/readyz"):
        assert path in schema["paths"]
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert schema["paths"]["/predict"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_every_documented_example_works(gateway: GatewayUnderTest, path: str) -> None:
    """The examples in /docs are posted as they are and answered 200 by a real model."""
    schema = gateway.client.get("/openapi.json").json()
    content = schema["paths"][path]["post"]["requestBody"]["content"]
    examples = content["application/json"]["examples"]
    assert len(examples) >= 2
    for name, example in examples.items():
        response = gateway.client.post(path, json=example["value"])
        assert response.status_code == 200, f"{path} example {name}: {response.text}"
        assert len(response.json()["predictions"]) == 1
    if "text/csv" in content:
        response = gateway.client.post(
            path, content=content["text/csv"]["example"], headers={"content-type": "text/csv"}
        )
        assert response.status_code == 200, response.text
