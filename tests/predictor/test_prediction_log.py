"""Prediction logging: records reach the real SQLite store after the reply; a failing or stuck
store never fails or slows a prediction (those two stores are fakes, named as such)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from mlflow import MlflowClient
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor, wait_until
from predictor_registry import Registry

from mlplatform.client.frames import column_to_series, dataframe_to_frame
from mlplatform.common.store import PredictionRecord, PredictionSource, Store, StoreError
from mlplatform.common.store.sqlite import SQLiteStore
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc


class FakeFailingStore(SQLiteStore):
    """Fake: a real SQLite store whose prediction writes always fail (a store outage)."""

    def append_predictions(self, records: Iterable[PredictionRecord]) -> int:
        raise StoreError("fake outage: the store is down")


class FakeStuckStore(SQLiteStore):
    """Fake: a real SQLite store whose prediction writes hang until released (a slow store)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()

    def append_predictions(self, records: Iterable[PredictionRecord]) -> int:
        self.release.wait(30)
        return super().append_predictions(records)


def predict(predictor: PredictorUnderTest, rows: pd.DataFrame, **options: object) -> object:
    stub = predictor_pb2_grpc.PredictorStub(predictor.channel)
    request = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(rows), **options)
    return stub.Predict(request, timeout=30)


def dropped_rows(predictor: PredictorUnderTest) -> float:
    registry = predictor.running.metrics.registry
    return registry.get_sample_value("mlp_predictor_log_dropped_rows_total") or 0.0


def registered_estimator(registry: Registry, name: str) -> Any:
    """The registered pipeline itself, loaded as scikit-learn, to compute the expected values.

    Loaded from its artifact location: setting MLflow's global registry URI here would point
    later tests' clients at this registry."""
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    return mlflow.sklearn.load_model(client.get_model_version_download_uri(name, "1"))


def rows_of_both_classes(features: pd.DataFrame, estimator: Any) -> pd.DataFrame:
    """Four rows, two of each predicted class, interleaved, led by a row with a missing value
    where the frame has one: no two neighbours share a prediction."""
    predictions = pd.Series(estimator.predict(features), index=features.index)
    with_gaps = features.index[features.isna().any(axis=1)]
    first = with_gaps[0] if len(with_gaps) else features.index[0]
    other = predictions[predictions != predictions[first]].index[:2]
    same = predictions[predictions == predictions[first]].index.drop(first)[:1]
    return features.loc[[first, other[0], same[0], other[1]]]


def expected_input(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-12, abs=0)
    return value.item() if hasattr(value, "item") else value


@pytest.mark.parametrize(
    ("model_name", "class_names"),
    [
        ("cancer_rf", ("0", "1")),  # all-double rows: the float path
        # A text target, label-encoded in sorted order: probability column 0 is "benign".
        ("pycaret_lr", ("benign", "malignant")),  # mixed columns: the DataFrame path
    ],
)
def test_every_row_is_logged_with_its_own_inputs_prediction_and_probabilities(
    background_loop: BackgroundLoop,
    registry: Registry,
    store: Store,
    model_name: str,
    class_names: tuple[str, str],
) -> None:
    features = {"cancer_rf": registry.cancer_features, "pycaret_lr": registry.pycaret_features}
    estimator = registered_estimator(registry, model_name)
    rows = rows_of_both_classes(features[model_name], estimator)
    expected_predictions = estimator.predict(rows).tolist()
    expected_probabilities = estimator.predict_proba(rows)
    assert len(set(expected_predictions[:2])) == 2  # the rows do not all predict alike
    predictor = start_test_predictor(
        background_loop, model_name, registry.tracking_uri, store=store
    )
    try:
        response = predict(predictor, rows, include_probabilities=True, request_id="logged-1")
        wait_until(
            lambda: store.count_predictions(request_id="logged-1") == 4, what="four logged rows"
        )
    finally:
        predictor.stop()
    records = store.query_predictions(request_id="logged-1")
    assert [record.row_index for record in records] == [0, 1, 2, 3]
    answered = column_to_series(response.predictions, 4).tolist()
    for position, record in enumerate(records):
        row = rows.iloc[position]
        assert (record.model_name, record.model_version) == (model_name, "1")
        assert record.source is PredictionSource.ONLINE
        assert record.input_row == {
            str(column): expected_input(row[column]) for column in rows.columns
        }, f"row {position}"
        assert record.prediction == expected_predictions[position] == answered[position]
        # cancer_rf is served compiled: probabilities within the compile check's tolerance.
        assert record.probabilities == {
            name: pytest.approx(expected_probabilities[position][column], rel=0, abs=1e-6)
            for column, name in enumerate(class_names)
        }, f"row {position}"
        assert record.latency_ms is not None and record.latency_ms > 0


@pytest.fixture
def failing_store_predictor(
    background_loop: BackgroundLoop, registry: Registry, tmp_path: Path
) -> Iterator[PredictorUnderTest]:
    store = FakeFailingStore(tmp_path / "failing.db")
    predictor = start_test_predictor(
        background_loop, "identity", registry.tracking_uri, store=store
    )
    yield predictor
    predictor.stop()
    store.close()


def test_a_store_outage_fails_no_prediction_and_counts_dropped_rows(
    failing_store_predictor: PredictorUnderTest,
) -> None:
    for value in range(5):
        predict(failing_store_predictor, pd.DataFrame({"x": [float(value), 1.0]}))
    wait_until(lambda: dropped_rows(failing_store_predictor) == 10, what="10 dropped rows")


def test_a_stuck_store_never_slows_predictions_the_bounded_buffer_drops_instead(
    background_loop: BackgroundLoop, registry: Registry, tmp_path: Path
) -> None:
    store = FakeStuckStore(tmp_path / "stuck.db")
    predictor = start_test_predictor(
        background_loop,
        "identity",
        registry.tracking_uri,
        store=store,
        log_buffer_rows=5,
        log_flush_rows=1,
    )
    try:
        started = time.perf_counter()
        for value in range(30):
            predict(predictor, pd.DataFrame({"x": [float(value)]}))
        elapsed = time.perf_counter() - started
        assert elapsed < 10  # the writer is stuck for 30 s; predictions did not wait for it
        # One row is stuck in the writer, 5 fill the buffer, the rest were dropped.
        wait_until(lambda: dropped_rows(predictor) >= 24, what="dropped rows to be counted")
    finally:
        store.release.set()
        predictor.stop()
        store.close()
