"""Predicting a part and storing it, without the broker: plain functions and the handler."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pika
import pytest

from mlplatform.client.batches import batch_parts
from mlplatform.common.consumer import Delivery, Done, Later, Outcome, Reject
from mlplatform.common.input_schema import ColumnKind, ColumnSpec, InvalidInputError, ProblemType
from mlplatform.common.model_loading import LoadedModel, ModelReference
from mlplatform.common.store import (
    BatchPredictions,
    BatchRecord,
    BatchStatus,
    InvalidRecordError,
    Store,
)
from mlplatform.common.store.sqlite import SQLiteStore
from mlplatform.inferer.batch_job import predict_part
from mlplatform.inferer.worker import InfererHandler


class ThresholdModel:
    """Predicts x > 0; its probabilities can be made NaN, as a broken model's can."""

    classes_ = np.array([0, 1])

    def __init__(self, nan_probabilities: bool = False) -> None:
        self.nan_probabilities = nan_probabilities

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return (features["x"].fillna(0).to_numpy() > 0).astype(np.int64)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        positive = 1 / (1 + np.exp(-features["x"].fillna(0).to_numpy()))
        if self.nan_probabilities:
            positive[-1] = math.nan
        return np.column_stack([1 - positive, positive])


def loaded(estimator: ThresholdModel) -> LoadedModel:
    return LoadedModel(
        name="threshold",
        version="2",
        alias="production",
        estimator=estimator,
        input_schema=(ColumnSpec("x", ColumnKind.DOUBLE, required=False),),
        problem_type=ProblemType.CLASSIFICATION,
        classes=(0, 1),
    )


def settled(outcome: Outcome | Later) -> Outcome:
    """The handler's final outcome: a stored part answers `Later`, settled by its writes."""
    return outcome.future.result(timeout=60) if isinstance(outcome, Later) else outcome


class OneModel:
    """Stands in for the ModelCache: always the same loaded model."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def get(self, reference: ModelReference) -> LoadedModel:
        return self.model


def delivery_of(rows: pd.DataFrame, batch_id: str) -> Delivery:
    [part] = batch_parts(rows, "threshold@production", batch_id, include_probabilities=True)
    part.row_offset = 100  # as if it were a later part of a larger batch
    return Delivery(part.SerializeToString(), pika.BasicProperties(), redelivered=False)


def test_chunks_keep_their_rows_offsets_and_predictions() -> None:
    rows = pd.DataFrame({"x": [-1.0, 2.0, math.nan, 0.5, -3.0]})
    [part] = batch_parts(rows, "threshold@production", "b-1", include_probabilities=True)
    part.row_offset = 100
    result = predict_part(part, loaded(ThresholdModel()), chunk_rows=2)
    assert [chunk.row_offset for chunk in result.chunks] == [100, 102, 104]
    assert [len(chunk) for chunk in result.chunks] == [2, 2, 1] and result.row_count == 5
    assert [chunk.predictions.tolist() for chunk in result.chunks] == [[0, 1], [0, 1], [0]]
    assert result.chunks[0].class_names == ("0", "1")
    assert result.chunks[1].input_rows() == [{"x": None}, {"x": 0.5}]
    assert all(chunk.latency_ms is not None for chunk in result.chunks)


def test_a_key_column_is_taken_off_before_the_check_and_kept_as_text() -> None:
    """The model's schema has only x: the key column would be refused as an input. Keys are
    text; a number column with a gap holds floats, whose whole values read as integers."""
    rows = pd.DataFrame({"x": [-1.0, 2.0, 0.5], "order": [1001.0, math.nan, 1003.0]})
    [part] = batch_parts(rows, "threshold@production", "b-key", key_column="order")
    result = predict_part(part, loaded(ThresholdModel()), chunk_rows=2)
    assert [chunk.prediction_keys for chunk in result.chunks] == [("1001", None), ("1003",)]
    assert result.chunks[0].input_rows() == [{"x": -1.0}, {"x": 2.0}]


def test_a_key_column_the_rows_lack_is_refused_naming_it() -> None:
    [part] = batch_parts(pd.DataFrame({"x": [1.0]}), "threshold@production", "b-nokey")
    part.key_column = "order"
    with pytest.raises(InvalidInputError, match="'order': missing; it was named as the key"):
        predict_part(part, loaded(ThresholdModel()))
    with pytest.raises(ValueError, match="key column 'order' is not a column of the rows"):
        batch_parts(pd.DataFrame({"x": [1.0]}), "threshold@production", "b", key_column="order")


def test_a_part_is_stored_and_counted(store: Store) -> None:
    handler = InfererHandler(OneModel(loaded(ThresholdModel())), store, chunk_rows=2)  # type: ignore[arg-type]
    rows = pd.DataFrame({"x": [-1.0, 2.0, 0.5]})
    first = handler(delivery_of(rows, "b-ok"))
    assert isinstance(first, Later)
    assert settled(first) == Done()
    stored = store.query_predictions(batch_id="b-ok")
    assert [(record.row_index, record.prediction) for record in stored] == [
        (100, 0),
        (101, 1),
        (102, 1),
    ]
    assert stored[1].probabilities == pytest.approx({"0": 0.11920292, "1": 0.88079708})
    batch = store.get_batch("b-ok")
    assert (batch.status, batch.rows_done, batch.model_version) == (BatchStatus.SUCCEEDED, 3, "2")


class GatedModel(ThresholdModel):
    """Predicts only once `release` is set, so a test can see what the handler does while
    the model is busy."""

    def __init__(self) -> None:
        super().__init__()
        self.predicting = threading.Event()
        self.release = threading.Event()

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        self.predicting.set()
        assert self.release.wait(timeout=60), "the test never released the model"
        return super().predict(features)


def test_the_next_part_is_checked_while_the_model_predicts_this_one(store: Store) -> None:
    model = GatedModel()
    handler = InfererHandler(OneModel(loaded(model)), store)  # type: ignore[arg-type]
    try:
        first = handler(delivery_of(pd.DataFrame({"x": [1.0]}), "b-first"))
        assert model.predicting.wait(timeout=60)
        # The model holds the first part; the next parts are checked meanwhile: a bad one is
        # refused at once, a good one waits for the model in its own future.
        refused = handler(delivery_of(pd.DataFrame({"x": ["one"]}), "b-bad"))
        queued = handler(delivery_of(pd.DataFrame({"x": [-1.0]}), "b-second"))
        assert (
            isinstance(refused, Reject) and "rows do not fit model threshold v2" in refused.reason
        )
        assert "'x'" in refused.reason
        assert isinstance(first, Later) and isinstance(queued, Later)
        assert not first.future.done() and not queued.future.done()
        model.release.set()
        assert (settled(first), settled(queued)) == (Done(), Done())
    finally:
        model.release.set()
        handler.close()
    assert [record.prediction for record in store.query_predictions(batch_id="b-second")] == [0]
    assert store.get_batch("b-bad").status is BatchStatus.FAILED


class BatchWatchingStore(SQLiteStore):
    """A real SQLite store that keeps the batch as each `mark_batch_part_done` left it: what
    a reader polling for the batch's end can see at that moment."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.seen: list[BatchRecord] = []

    def mark_batch_part_done(self, batch_id: str, part_index: int, rows: int) -> BatchRecord:
        batch = super().mark_batch_part_done(batch_id, part_index, rows)
        self.seen.append(self.get_batch(batch_id))
        return batch


def test_a_finished_batch_already_names_its_model_version(tmp_path: Path) -> None:
    store = BatchWatchingStore(tmp_path / "store.db")
    try:
        handler = InfererHandler(OneModel(loaded(ThresholdModel())), store)  # type: ignore[arg-type]
        assert settled(handler(delivery_of(pd.DataFrame({"x": [1.0]}), "b-version"))) == Done()
        handler.close()
    finally:
        store.close()
    [finished] = store.seen
    assert (finished.status, finished.model_version) == (BatchStatus.SUCCEEDED, "2")


def test_nan_probabilities_fail_the_batch_instead_of_retrying(store: Store) -> None:
    handler = InfererHandler(OneModel(loaded(ThresholdModel(nan_probabilities=True))), store)  # type: ignore[arg-type]
    outcome = settled(handler(delivery_of(pd.DataFrame({"x": [1.0, 2.0]}), "b-nan")))
    assert isinstance(outcome, Reject)
    assert "threshold v2 gave predictions the store refuses: probabilities" in outcome.reason
    batch = store.get_batch("b-nan")
    assert batch.status is BatchStatus.FAILED and "probabilities" in (batch.error or "")
    assert store.count_predictions(batch_id="b-nan") == 0


class SlowThenFailingStore:
    """Wraps a real store: the first chunk's write is slow, the second's is refused. Records
    when each write finished, to show the handler waits for every write before it answers."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.finished: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def append_batch_predictions(self, chunk: BatchPredictions) -> int:
        if chunk.row_offset == 100:
            time.sleep(0.3)  # still writing while the later chunks are predicted
            added = self._store.append_batch_predictions(chunk)
            self.finished.append(chunk.row_offset)
            return added
        self.finished.append(chunk.row_offset)
        if chunk.row_offset == 102:
            raise InvalidRecordError("prediction", "refused by the test")
        return self._store.append_batch_predictions(chunk)


def test_chunks_are_stored_while_predicting_and_a_failed_write_fails_the_part(
    store: Store,
) -> None:
    wrapped = SlowThenFailingStore(store)
    handler = InfererHandler(OneModel(loaded(ThresholdModel())), wrapped, chunk_rows=2)  # type: ignore[arg-type]
    try:
        outcome = settled(
            handler(delivery_of(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0]}), "b-w"))
        )
        # Answered only once every write (the slow one included) had finished.
        assert sorted(wrapped.finished) == [100, 102, 104]
    finally:
        handler.close()
    assert isinstance(outcome, Reject)
    assert "prediction: refused by the test" in outcome.reason
    assert store.get_batch("b-w").status is BatchStatus.FAILED
