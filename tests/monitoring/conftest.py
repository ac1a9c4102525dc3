"""Fixtures of the monitoring tests: a real MLflow registry holding a small classifier with its
baseline, a real predictor serving it (logging into a SQLite store) and a real gateway in front
(see monitoring_model)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from monitoring_model import (  # it puts the predictor's and gateway's helpers on the path
    MODEL,
    BackgroundLoop,
    MonitoredModel,
    build_baseline,
    draw_rows,
    log_and_register,
    log_baseline,
    open_registry,
    open_store,
    running_gateway,
    start_test_predictor,
    true_labels,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


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
