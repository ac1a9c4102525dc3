"""Fixtures of the monitoring tests: a real MLflow registry holding a small classifier with its
baseline, a real predictor serving it (logging into a SQLite store) and a real gateway in front.

`churn_lr`: a logistic regression on six numeric features `f0`..`f5`, classes "churn" and
"stay". Its baseline is stored as the trainer stores one (common.monitoring.baseline).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

TESTS = Path(__file__).resolve().parents[1]
# The predictor's and gateway's test helpers (folders of plain modules, not packages).
sys.path.insert(0, str(TESTS / "predictor"))
sys.path.insert(0, str(TESTS / "gateway"))

from gateway_harness import GatewayUnderTest, running_gateway  # noqa: E402
from predictor_harness import (  # noqa: E402
    BackgroundLoop,
    PredictorUnderTest,
    start_test_predictor,
)
from predictor_registry import log_and_register, open_registry  # noqa: E402

from mlplatform.common.monitoring.baseline import build_baseline, log_baseline  # noqa: E402
from mlplatform.common.store import Store, open_store  # noqa: E402

MODEL = "churn_lr"
FEATURES = [f"f{index}" for index in range(6)]


def draw_rows(rows: int, seed: int) -> pd.DataFrame:
    """Rows drawn the way the training data was."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)


def true_labels(features: pd.DataFrame, seed: int) -> pd.Series:
    """The rule the model learns, with some noise so it is not always right."""
    rng = np.random.default_rng(seed)
    score = features["f0"] + 0.8 * features["f2"] - 0.5 * features["f3"]
    score = score + rng.normal(scale=0.7, size=len(features))
    return pd.Series(np.where(score > 0, "churn", "stay"), name="churned")


@dataclass(frozen=True)
class MonitoredModel:
    tracking_uri: str
    store_uri: str
    store: Store
    predictor: PredictorUnderTest
    gateway: GatewayUnderTest


@pytest.fixture(scope="session")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoredModel]:
    root = tmp_path_factory.mktemp("monitoring")
    tracking_uri = open_registry(root)
    training = draw_rows(600, seed=1)
    labels = true_labels(training, seed=2)
    train, holdout = training.iloc[:450], training.iloc[450:]
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(train, labels.iloc[:450])
    version = log_and_register(tracking_uri, model, train, MODEL)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    baseline = build_baseline(
        "classification",
        "churned",
        train,
        holdout,
        labels.iloc[450:],
        model.predict,
        lambda frame: (list(model.classes_), model.predict_proba(frame)),
    )
    log_baseline(client, client.get_model_version(MODEL, version).run_id, baseline)

    store_uri = f"sqlite:///{root / 'store.db'}"
    store = open_store(store_uri)
    loop = BackgroundLoop()
    predictor = start_test_predictor(loop, MODEL, tracking_uri, store=store, metrics_port=-1)
    try:
        with running_gateway(predictor.address, root) as gateway:
            yield MonitoredModel(tracking_uri, store_uri, store, predictor, gateway)
    finally:
        predictor.stop()
        loop.close()
        store.close()
