"""Spark batch fixtures: one local[2] Spark session for the whole test session, a real MLflow
registry (SQLite) holding a model logged the way the trainer logs it (our trigonometry
transformer inside, pickled by value), a real SQLite store, and input files.

The session is started once: a Spark session costs seconds to start and a JVM's memory, and
the machine is shared. Settings keep it light (no UI, two shuffle partitions, 1 GiB driver).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlplatform.common.model_loading import LoadedModel, ModelReference, load_model
from mlplatform.common.settings import get_settings
from mlplatform.common.store import Store, open_store
from mlplatform.common.transformers import TrigonometryFeatures
from mlplatform.spark.session import start_session
from mlplatform.trainer.tracking import PipelineTracking

MODEL_NAME = "spark-churn"
FEATURES = ("tenure", "monthly_charges", "support_calls")


def make_rows(count: int, seed: int) -> pd.DataFrame:
    """Customers with an id, three features (one integer) and, for training, a label."""
    generator = np.random.default_rng(seed)
    tenure = generator.uniform(0, 72, count)
    charges = generator.normal(70, 25, count)
    calls = generator.integers(0, 8, count)
    score = -0.05 * tenure + 0.02 * charges + 0.5 * calls + generator.normal(0, 1, count)
    return pd.DataFrame(
        {
            "customer_id": [f"c{index:07d}" for index in range(count)],
            "tenure": tenure,
            "monthly_charges": charges,
            "support_calls": calls.astype(np.int64),
            "label": np.where(score > 1.0, "churn", "stay"),
        }
    )


@dataclass(frozen=True)
class Registry:
    tracking_uri: str
    model: LoadedModel


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A classifier with string labels and our transformer, logged through the trainer's own
    `log_pipeline_model` and registered as MODEL_NAME@production (version 1)."""
    root = tmp_path_factory.mktemp("spark-registry")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.create_experiment("spark-tests", artifact_location=(root / "artifacts").as_uri())
    training = make_rows(2000, seed=1)
    pipeline = make_pipeline(
        TrigonometryFeatures(columns=["tenure"]), StandardScaler(), LogisticRegression()
    ).fit(training[list(FEATURES)], training["label"])
    tracking = PipelineTracking(tracking_uri, "spark-tests", "spark-pipeline-1")
    tracking.start({})
    model_uri = tracking.log_pipeline_model(pipeline, training[list(FEATURES)].head(20))
    tracking.register(model_uri, MODEL_NAME, "production", {})
    tracking.finish(True)
    loaded = load_model(ModelReference(MODEL_NAME, alias="production"), tracking_uri)
    return Registry(tracking_uri, loaded)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    session = start_session("local[2]", {"spark.driver.memory": "1g"}, "mlp-tests")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(store_uri: str) -> Iterator[Store]:
    with open_store(store_uri) as opened:
        yield opened


@pytest.fixture
def cli_settings(
    store_uri: str, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """`mlp` commands run in this process read the test's store and registry."""
    monkeypatch.setenv("MLP_STORE_URI", store_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def in_process(model: LoadedModel, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """What the inferer computes for `rows`: predictions and class probabilities."""
    features = rows[[spec.name for spec in model.input_schema]]
    output = model.predict(model.check(features), with_probabilities=True)
    assert output.probabilities is not None
    return output.predictions, output.probabilities
