"""PredictorClient and AsyncPredictorClient against a real predictor serving a model from a
real MLflow registry (SQLite store in tmp), in this process on a background event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlplatform.client.predictor_client import (
    AsyncPredictorClient,
    PredictorClient,
    PredictorError,
)
from mlplatform.predictor.server import RunningPredictor, start_predictor
from mlplatform.predictor.settings import PredictorSettings

MODEL = "client_churn"


def training_rows() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    rows = pd.DataFrame(
        {"tenure": rng.uniform(0, 60, 200), "plan": rng.choice(["basic", "pro"], 200)}
    )
    churned = np.where((rows["tenure"] < 20) & (rows["plan"] == "basic"), "yes", "no")
    return rows, churned


def register_model(root: Path) -> tuple[str, object]:
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("client", artifact_location=(root / "art").as_uri())
    rows, churned = training_rows()
    model = make_pipeline(
        make_column_transformer((StandardScaler(), ["tenure"]), (OneHotEncoder(), ["plan"])),
        LogisticRegression(),
    ).fit(rows, churned)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(rows, model.predict(rows)),
            serialization_format="cloudpickle",
            registered_model_name=MODEL,
            pip_requirements=["scikit-learn"],
        )
    MlflowClient(tracking_uri).set_registered_model_alias(
        MODEL, "production", info.registered_model_version
    )
    return tracking_uri, model


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """(address, the fitted model) of a predictor serving MODEL."""
    root = tmp_path_factory.mktemp("client_registry")
    tracking_uri, model = register_model(root)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    settings = PredictorSettings(
        model=MODEL, host="127.0.0.1", port=0, metrics_port=-1, log_predictions=False
    )
    running: RunningPredictor = run(
        start_predictor(settings, tracking_uri, store_uri=f"sqlite:///{root / 'store.db'}")
    )
    deadline = time.monotonic() + 60
    while running.slot.current is None:
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.02)
    yield f"127.0.0.1:{running.port}", model
    run(running.stop())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_sync_client_predicts_with_and_without_probabilities(served: tuple[str, object]) -> None:
    address, model = served
    rows = pd.DataFrame({"tenure": [5.0, 50.0], "plan": ["basic", "pro"]})
    with PredictorClient(address, model_name=MODEL) as client:
        plain = client.predict(rows)
        detailed = client.predict(rows, include_probabilities=True, request_id="client-1")
    assert plain.predictions.tolist() == model.predict(rows).tolist()
    assert plain.predictions.name == "prediction"
    assert plain.probabilities is None
    assert (plain.model_name, plain.model_version) == (MODEL, "1")
    assert detailed.request_id == "client-1"
    assert list(detailed.probabilities.columns) == ["no", "yes"]
    np.testing.assert_allclose(detailed.probabilities.to_numpy(), model.predict_proba(rows))
    table = detailed.to_dataframe()
    assert list(table.columns) == ["prediction", "no", "yes"]


def test_sync_client_reports_model_info(served: tuple[str, object]) -> None:
    address, _ = served
    with PredictorClient(address) as client:
        info = client.model_info()
    assert (info.model_name, info.model_version, info.alias) == (MODEL, "1", "production")
    assert info.problem_type == "classification"
    assert info.classes == ("no", "yes")
    assert [(c.name, c.type, c.required) for c in info.input_schema] == [
        ("tenure", "double", True),
        ("plan", "string", True),
    ]
    # A text column: scikit-learn serves it, and says why.
    assert info.backend == "sklearn"
    assert info.compile_reason.startswith("column 'plan' is text")


def test_invalid_input_raises_predictor_error_with_the_offending_columns(
    served: tuple[str, object],
) -> None:
    address, _ = served
    with PredictorClient(address) as client, pytest.raises(PredictorError) as caught:
        client.predict(pd.DataFrame({"tenure": ["long"], "region": ["north"]}))
    error = caught.value
    assert error.code.name == "INVALID_ARGUMENT"
    assert set(error.fields) == {"tenure", "region", "plan"}
    assert error.request_id


def test_wrong_model_name_raises_not_found(served: tuple[str, object]) -> None:
    address, _ = served
    with (
        PredictorClient(address, model_name="other") as client,
        pytest.raises(PredictorError) as caught,
    ):
        client.model_info()
    assert caught.value.code.name == "NOT_FOUND"


def test_async_client_predicts_concurrently(served: tuple[str, object]) -> None:
    address, model = served

    async def scenario() -> list[object]:
        async with AsyncPredictorClient(address, model_name=MODEL) as client:
            info = await client.model_info()
            assert info.model_name == MODEL
            return await asyncio.gather(
                *(
                    client.predict(
                        pd.DataFrame({"tenure": [float(t)], "plan": ["basic"]}),
                        include_probabilities=t % 2 == 0,
                    )
                    for t in range(10)
                )
            )

    results = asyncio.run(scenario())
    for tenure, result in enumerate(results):
        expected = model.predict(pd.DataFrame({"tenure": [float(tenure)], "plan": ["basic"]}))
        assert result.predictions.tolist() == expected.tolist()
        assert (result.probabilities is not None) == (tenure % 2 == 0)
