"""Prediction logging: records reach the real SQLite store after the reply; a failing or stuck
store never fails or slows a prediction (those two stores are fakes, named as such)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from predictor_harness import BackgroundLoop, PredictorUnderTest, start_test_predictor, wait_until
from predictor_registry import Registry

from mlplatform.client.frames import dataframe_to_frame
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


def test_every_row_is_logged_with_request_id_version_inputs_outputs_and_latency(
    cancer_predictor: PredictorUnderTest, registry: Registry, session_store: Store
) -> None:
    rows = registry.cancer_features.iloc[10:13]
    response = predict(cancer_predictor, rows, include_probabilities=True, request_id="logged-1")
    wait_until(
        lambda: session_store.count_predictions(request_id="logged-1") == 3,
        what="three logged rows",
    )
    records = session_store.query_predictions(request_id="logged-1")
    assert [record.row_index for record in records] == [0, 1, 2]
    first = records[0]
    assert (first.model_name, first.model_version) == ("cancer_rf", "1")
    assert first.source is PredictionSource.ONLINE
    assert first.input_row["mean_radius"] == pytest.approx(rows["mean_radius"].iloc[0])
    assert len(first.input_row) == 30
    assert first.prediction == response.predictions.int64_values.values[0]
    assert set(first.probabilities) == {"0", "1"}
    assert first.latency_ms is not None and first.latency_ms > 0


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
