"""`POST /invocations` speaks MLflow's scoring-server protocol: checked with MLflow's own client
(`mlflow.pyfunc.scoring_server.client.ScoringServerClient`, which nobody here wrote), and with
every request format `mlflow models serve` documents, against a real predictor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gateway_data import credit_fraud_features
from gateway_harness import GatewayUnderTest
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from predictor_harness import PredictorUnderTest

from mlplatform.client.predictor_client import PredictorClient


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return credit_fraud_features().iloc[[3, 5, 8]].reset_index(drop=True)


@pytest.fixture(scope="module")
def expected(credit_predictor: PredictorUnderTest, rows: pd.DataFrame) -> pd.DataFrame:
    with PredictorClient(credit_predictor.address) as client:
        return client.predict(rows, include_probabilities=True).to_dataframe()


@pytest.fixture(scope="module")
def mlflow_client(gateway: GatewayUnderTest) -> ScoringServerClient:
    client = ScoringServerClient("127.0.0.1", gateway.port)
    client.wait_server_ready(timeout=30)  # polls /ping, as MLflow's tooling does
    return client


def test_mlflow_client_with_a_dataframe(
    mlflow_client: ScoringServerClient, rows: pd.DataFrame, expected: pd.DataFrame
) -> None:
    """A DataFrame goes as `dataframe_split` (with an `index`, which is ignored)."""
    result = mlflow_client.invoke(rows)
    predictions = result.get_predictions()
    assert predictions.iloc[:, 0].tolist() == expected["prediction"].tolist()


def test_mlflow_client_asking_for_probabilities(
    mlflow_client: ScoringServerClient, rows: pd.DataFrame, expected: pd.DataFrame
) -> None:
    """`params={"predict_method": "predict_proba"}`, as MLflow's scikit-learn flavour takes it:
    one list of class probabilities per row, in class order."""
    result = mlflow_client.invoke(rows, params={"predict_method": "predict_proba"})
    probabilities = np.asarray(result["predictions"])
    np.testing.assert_allclose(probabilities, expected[["0", "1"]].to_numpy())


def test_mlflow_client_with_positional_rows(
    mlflow_client: ScoringServerClient, rows: pd.DataFrame, expected: pd.DataFrame
) -> None:
    """A numpy array goes as `inputs` without column names: they are the model's, in order."""
    result = mlflow_client.invoke(rows.to_numpy())
    assert result.get_predictions().iloc[:, 0].tolist() == expected["prediction"].tolist()


@pytest.mark.parametrize(
    "shape",
    [
        "dataframe_split",
        "dataframe_records",
        "instances_records",
        "instances_columns",
        "inputs_columns",
        "inputs_records",
        "inputs_positional",
    ],
)
def test_every_request_format(
    gateway: GatewayUnderTest, rows: pd.DataFrame, expected: pd.DataFrame, shape: str
) -> None:
    split = rows.to_dict(orient="split")
    records = rows.to_dict(orient="records")
    columns = rows.to_dict(orient="list")
    bodies = {
        "dataframe_split": {
            "dataframe_split": {"columns": split["columns"], "data": split["data"]}
        },
        "dataframe_records": {"dataframe_records": records},
        "instances_records": {"instances": records},
        "instances_columns": {"instances": columns},
        "inputs_columns": {"inputs": columns},
        "inputs_records": {"inputs": records},
        "inputs_positional": {"inputs": split["data"]},
    }
    response = gateway.client.post("/invocations", json=bodies[shape])
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected["prediction"].tolist()}
    assert response.headers["x-model-name"] == "credit_fraud"
    assert response.headers["x-model-version"] == "1"


def test_csv_body(gateway: GatewayUnderTest, rows: pd.DataFrame, expected: pd.DataFrame) -> None:
    response = gateway.client.post(
        "/invocations",
        content=rows.to_csv(index=False),
        headers={"content-type": "text/csv; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected["prediction"].tolist()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dataframe_records": [{"Time": 1.0}], "instances": [{"Time": 1.0}]}, "body"),
        ({"records": []}, "body"),
        ({"inputs": [[1.0, 2.0]]}, "inputs[0]"),
        ({"dataframe_split": {"columns": ["a"]}}, "dataframe_split"),
        ({"dataframe_records": [{"Time": 1.0}], "params": {"predict_method": "transform"}},
         "params.predict_method"),
    ],
)  # fmt: skip
def test_malformed_invocations_are_400_naming_the_field(
    gateway: GatewayUnderTest, body: dict[str, object], field: str
) -> None:
    response = gateway.client.post("/invocations", json=body)
    assert response.status_code == 400, response.text
    [detail] = response.json()["details"]
    assert detail["fieldViolations"][0]["field"] == field


def test_unsupported_content_type_is_415_as_mlflow_answers(gateway: GatewayUnderTest) -> None:
    for content_type in ("application/xml", "application/json; charset=latin-1"):
        response = gateway.client.post(
            "/invocations", content=b"{}", headers={"content-type": content_type}
        )
        assert response.status_code == 415, content_type
        assert response.json()["status"] == "INVALID_ARGUMENT"
