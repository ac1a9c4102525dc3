"""The store contract: what every backend must do, run against each reachable backend."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlplatform.common.store import (
    BatchPredictions,
    BatchRecord,
    BatchStatus,
    DeadLetter,
    DuplicateOutcomeError,
    InvalidRecordError,
    NotFoundError,
    Outcome,
    OutcomeReport,
    PipelineRun,
    PredictionRecord,
    RunError,
    RunEvent,
    RunStatus,
    StepRecord,
    StepStatus,
    Store,
    StoreError,
)
from mlplatform.common.store.transitions import MAX_RUN_EVENTS

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
MakePrediction = Callable[..., PredictionRecord]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def full_run(pipeline_id: str = "run-1", created_at: datetime = T0) -> PipelineRun:
    return PipelineRun(
        pipeline_id=pipeline_id,
        status=RunStatus.SUCCEEDED,
        definition={"experiment_config": {"experiment_name": "Ünïcode ✓"}, "pipeline": []},
        experiment_name="Ünïcode ✓",
        model_name="churn",
        submitted_by="ada",
        created_at=created_at,
        started_at=created_at + timedelta(seconds=1),
        finished_at=created_at + timedelta(seconds=60),
        attempts=1,
        steps=[
            StepRecord(
                name="load_data_from_file",
                status=StepStatus.SUCCEEDED,
                started_at=created_at + timedelta(seconds=1),
                finished_at=created_at + timedelta(seconds=2),
                elapsed_seconds=1.0,
                findings={"rows": 891, "columns": ["age", "fare"], "nested": {"none": None}},
                message="loaded",
            )
        ],
        mlflow_experiment_id="7",
        mlflow_run_id="abc123",
        best_model="lightgbm",
        main_metric="AUC",
        main_metric_value=0.91,
        registered_model_name="churn",
        registered_version=3,
        alias="production",
        error=None,
    )


# -- pipeline runs ---------------------------------------------------------------------------


def test_created_run_reads_back_equal(store: Store) -> None:
    run = full_run()
    created = store.create_run(run)
    assert created.created is True
    assert created.record == run
    assert store.get_run("run-1") == run
    assert store.get_run("run-1").registered_version == "3"


def test_create_run_is_idempotent_and_never_overwrites(store: Store) -> None:
    store.create_run(full_run())
    again = store.create_run(PipelineRun(pipeline_id="run-1", status=RunStatus.QUEUED))
    assert again.created is False
    assert again.record.status is RunStatus.SUCCEEDED
    assert store.get_run("run-1") == full_run()
    assert len(store.list_runs()) == 1


def test_unknown_run_is_not_found_never_pending(store: Store) -> None:
    with pytest.raises(NotFoundError) as caught:
        store.get_run("no-such-run")
    assert caught.value.key == "no-such-run"
    assert str(caught.value) == "pipeline run 'no-such-run' not found"
    assert isinstance(caught.value, KeyError)
    with pytest.raises(NotFoundError):
        store.update_run("no-such-run", status="running")
    with pytest.raises(NotFoundError):
        store.upsert_step("no-such-run", StepRecord(name="train_model"))


def test_update_run_changes_only_given_fields(store: Store) -> None:
    store.create_run(PipelineRun(pipeline_id="run-1", model_name="churn", created_at=T0))
    updated = store.update_run("run-1", status=RunStatus.RUNNING, started_at=at(5), attempts=1)
    assert updated.status is RunStatus.RUNNING
    assert updated.started_at == at(5)
    assert updated.attempts == 1
    assert updated.model_name == "churn"
    assert updated.created_at == T0
    assert store.get_run("run-1") == updated

    failed = store.update_run(
        "run-1",
        status="failed",
        error=RunError(step="train_model", error_type="ValueError", message="bad target"),
    )
    assert failed.error == RunError(
        step="train_model", error_type="ValueError", message="bad target"
    )
    assert failed.started_at == at(5)
    assert store.update_run("run-1", error=None).error is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"statuss": "running"}, "statuss"),
        ({"pipeline_id": "other"}, "pipeline_id"),
        ({"status": "paused"}, "status"),
        ({"attempts": -1}, "attempts"),
        ({"started_at": datetime(2024, 1, 1)}, "started_at"),  # naive: no timezone
    ],
)
def test_invalid_run_update_names_the_field(
    store: Store, changes: dict[str, object], field: str
) -> None:
    store.create_run(PipelineRun(pipeline_id="run-1"))
    with pytest.raises(InvalidRecordError) as caught:
        store.update_run("run-1", **changes)
    assert caught.value.field == field
    assert store.get_run("run-1").status is RunStatus.QUEUED


def test_events_are_appended_in_order_and_the_oldest_go_past_the_bound(store: Store) -> None:
    store.create_run(PipelineRun(pipeline_id="run-1"))
    store.append_event("run-1", RunEvent(kind="step_started", step="train", message="train"))
    store.append_event(
        "run-1",
        RunEvent(
            kind="model_evaluated",
            step="train",
            message="model 1 of 2",
            elapsed_seconds=1.5,
            model={"estimator_id": "lr", "index": 1, "total": 2, "score": 0.75},
        ),
    )
    stored = store.get_run("run-1")
    assert [event.kind for event in stored.events] == ["step_started", "model_evaluated"]
    assert stored.events[1].model == {"estimator_id": "lr", "index": 1, "total": 2, "score": 0.75}
    full = [RunEvent(message=f"event {number}") for number in range(MAX_RUN_EVENTS)]
    store.create_run(PipelineRun(pipeline_id="run-2", events=full))
    store.append_event("run-2", RunEvent(message="newest"))
    kept = store.get_run("run-2").events
    assert len(kept) == MAX_RUN_EVENTS
    assert kept[0].message == "event 1" and kept[-1].message == "newest"
    with pytest.raises(NotFoundError):
        store.append_event("no-such-run", RunEvent(message="lost"))


def test_upsert_step_appends_then_replaces_by_name(store: Store) -> None:
    store.create_run(PipelineRun(pipeline_id="run-1"))
    store.upsert_step("run-1", StepRecord(name="load", status=StepStatus.RUNNING))
    store.upsert_step("run-1", StepRecord(name="train", status=StepStatus.PENDING))
    run = store.upsert_step(
        "run-1",
        StepRecord(
            name="load", status=StepStatus.SUCCEEDED, elapsed_seconds=2.5, findings={"rows": 3}
        ),
    )
    assert [(step.name, step.status) for step in run.steps] == [
        ("load", StepStatus.SUCCEEDED),
        ("train", StepStatus.PENDING),
    ]
    stored = store.get_run("run-1")
    assert stored.step("load") == StepRecord(
        name="load", status=StepStatus.SUCCEEDED, elapsed_seconds=2.5, findings={"rows": 3}
    )


def test_list_runs_newest_first_with_limit_and_status(store: Store) -> None:
    for number, status in enumerate(["queued", "succeeded", "failed", "succeeded"]):
        store.create_run(
            PipelineRun(pipeline_id=f"run-{number}", status=status, created_at=at(number))
        )
    assert [run.pipeline_id for run in store.list_runs()] == ["run-3", "run-2", "run-1", "run-0"]
    assert [run.pipeline_id for run in store.list_runs(limit=2)] == ["run-3", "run-2"]
    assert [run.pipeline_id for run in store.list_runs(status=RunStatus.SUCCEEDED)] == [
        "run-3",
        "run-1",
    ]
    assert store.list_runs(limit=0) == []
    with pytest.raises(InvalidRecordError) as caught:
        store.list_runs(status="paused")
    assert caught.value.field == "status"


# -- predictions -----------------------------------------------------------------------------


def test_predictions_read_back_equal_with_unicode_and_none(
    store: Store, make_prediction: MakePrediction
) -> None:
    records = [
        make_prediction(
            row_index=0,
            input_row={"città": "Zürich ☃", "age": None, "score": 1.5, "vip": True, "n": 7},
            prediction={"label": "日本", "scores": [1, 2.5, None]},
            probabilities=None,
            latency_ms=None,
        ),
        make_prediction(row_index=1, input_row={}, prediction=None),
        make_prediction(
            source="online", request_id="req-ü", row_index=0, prediction=12.25, model_version=4
        ),
    ]
    assert store.append_predictions(records) == 3
    assert store.query_predictions(batch_id="batch-1") == records[:2]
    assert store.query_predictions(request_id="req-ü") == records[2:]
    assert store.query_predictions(request_id="req-ü")[0].model_version == "4"


def test_non_finite_inputs_read_back_as_none(store: Store, make_prediction: MakePrediction) -> None:
    store.append_predictions(
        [make_prediction(input_row={"x": math.nan, "y": [math.inf, 1.0]}, prediction=-math.inf)]
    )
    [stored] = store.query_predictions()
    assert stored.input_row == {"x": None, "y": [None, 1.0]}
    assert stored.prediction is None


def test_redelivered_batch_rows_are_not_duplicated(
    store: Store, make_prediction: MakePrediction
) -> None:
    first_part = [make_prediction(row_index=index) for index in range(5)]
    assert store.append_predictions(first_part) == 5
    assert store.append_predictions(first_part) == 0
    overlapping = [make_prediction(row_index=index) for index in range(3, 8)]
    assert store.append_predictions(overlapping) == 3
    repeated_in_one_call = [make_prediction(row_index=9), make_prediction(row_index=9)]
    assert store.append_predictions(repeated_in_one_call) == 1
    assert store.count_predictions(batch_id="batch-1") == 9
    assert store.append_predictions([]) == 0


def test_online_rows_are_keyed_by_request_and_row(
    store: Store, make_prediction: MakePrediction
) -> None:
    request_a = [make_prediction(source="online", request_id="a", row_index=i) for i in range(2)]
    request_b = [make_prediction(source="online", request_id="b", row_index=0)]
    batch_row = [make_prediction(batch_id="batch-9", row_index=0)]
    assert store.append_predictions(request_a + request_b + batch_row) == 4
    assert store.append_predictions(request_a) == 0
    assert store.count_predictions() == 4


def test_query_filters_and_counts(store: Store, make_prediction: MakePrediction) -> None:
    records = [
        make_prediction(model_version="1", batch_id="b1", row_index=0, created_at=at(0)),
        make_prediction(model_version="1", batch_id="b1", row_index=1, created_at=at(0)),
        make_prediction(model_version="2", batch_id="b2", row_index=0, created_at=at(10)),
        make_prediction(
            model_version="2", source="online", request_id="r1", row_index=0, created_at=at(20)
        ),
        make_prediction(model_name="fraud", batch_id="b3", row_index=0, created_at=at(30)),
    ]
    store.append_predictions(records)
    cases = [
        ({"model_name": "churn"}, records[:4]),
        ({"model_name": "churn", "model_version": "2"}, records[2:4]),
        ({"model_name": "churn", "model_version": 1}, records[:2]),
        ({"batch_id": "b1"}, records[:2]),
        ({"request_id": "r1"}, [records[3]]),
        ({"since": at(10)}, records[2:]),  # since is inclusive
        ({"until": at(10)}, records[:2]),  # until is exclusive
        ({"since": at(5), "until": at(25)}, records[2:4]),
        ({"model_name": "churn", "since": at(15)}, [records[3]]),
        ({"model_name": "nobody"}, []),
        ({}, records),
    ]
    for filters, expected in cases:
        assert store.query_predictions(**filters) == expected, filters
        assert store.count_predictions(**filters) == len(expected), filters


def test_naive_query_bounds_are_utc(store: Store, make_prediction: MakePrediction) -> None:
    store.append_predictions([make_prediction(created_at=at(10))])
    naive_since = at(10).replace(tzinfo=None)
    assert store.count_predictions(since=naive_since) == 1
    assert store.count_predictions(since=naive_since + timedelta(milliseconds=1)) == 0


def test_query_orders_by_time_then_row_index(store: Store, make_prediction: MakePrediction) -> None:
    written_out_of_order = [
        make_prediction(row_index=2, created_at=at(1)),
        make_prediction(row_index=0, created_at=at(2)),
        make_prediction(row_index=1, created_at=at(1)),
        make_prediction(row_index=0, created_at=at(1), batch_id="batch-2"),
    ]
    store.append_predictions(written_out_of_order)
    order = [(record.created_at, record.row_index) for record in store.query_predictions()]
    assert order == [(at(1), 0), (at(1), 1), (at(1), 2), (at(2), 0)]
    newest = store.query_predictions(newest_first=True, limit=2)
    assert [(record.created_at, record.row_index) for record in newest] == [(at(2), 0), (at(1), 2)]
    assert len(store.query_predictions(limit=3)) == 3
    assert store.query_predictions(limit=0) == []
    with pytest.raises(InvalidRecordError) as caught:
        store.query_predictions(limit=-1)
    assert caught.value.field == "limit"


def test_timestamps_keep_milliseconds(store: Store, make_prediction: MakePrediction) -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    store.append_predictions([make_prediction(created_at=moment)])
    [stored] = store.query_predictions()
    assert stored.created_at == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert stored.created_at.utcoffset() == timedelta(0)


def test_reads_while_another_thread_appends(store: Store, make_prediction: MakePrediction) -> None:
    failures: list[BaseException] = []

    def append_in_batches() -> None:
        try:
            for batch in range(20):
                store.append_predictions(
                    [make_prediction(batch_id=f"b{batch}", row_index=i) for i in range(50)]
                )
        except BaseException as error:  # surfaced by the assertion below
            failures.append(error)

    writer = threading.Thread(target=append_in_batches)
    writer.start()
    while writer.is_alive():
        store.query_predictions(limit=10)
        store.count_predictions(model_name="churn")
    writer.join()
    assert failures == []
    assert store.count_predictions() == 1000


# -- batch predictions as columns ------------------------------------------------------------


def mixed_inputs() -> pd.DataFrame:
    """Every kind of column a Frame decodes to, with missing and non-finite values."""
    return pd.DataFrame(
        {
            "amount": [1.5, math.nan, math.inf, -0.0, 1e-300],
            "count": np.array([1, -2, 2**62, 0, 7], dtype=np.int64),
            "vip": [True, False, True, True, False],
            "città": ["Zürich ☃", None, "", "日本", 'a"b'],
            "maybe_count": pd.array([1, None, 3, None, 5], dtype="Int64"),
            "maybe_flag": pd.array([True, None, False, None, True], dtype="boolean"),
            "narrow": np.array([0.1, 0.2, math.nan, 1.0, -1.0], dtype=np.float32),
        }
    )


def per_row_records(batch: BatchPredictions, batch_id: str) -> list[PredictionRecord]:
    """The batch as the inferer built records before the columnar path, one by one."""
    inputs = batch.inputs
    input_rows = inputs.astype(object).where(inputs.notna(), None).to_dict("records")
    records = []
    for position, input_row in enumerate(input_rows):
        prediction = batch.predictions[position]
        probabilities = None
        if batch.probabilities is not None:
            probabilities = dict(
                zip(batch.class_names, map(float, batch.probabilities[position]), strict=True)
            )
        records.append(
            PredictionRecord(
                model_name=batch.model_name,
                model_version=batch.model_version,
                input_row=input_row,
                prediction=prediction.item() if isinstance(prediction, np.generic) else prediction,
                probabilities=probabilities,
                source="batch",
                batch_id=batch_id,
                row_index=batch.row_offset + position,
                latency_ms=batch.latency_ms,
                created_at=batch.created_at,
            )
        )
    return records


PREDICTION_KINDS = {
    "int labels": np.array([0, 1, 1, 0, 1]),
    "text labels": np.array(["stay", "leave", "stay", "日本", "stay"], dtype=object),
    "numpy scalars as objects": np.array(
        [np.int64(3), np.float64(0.5), 2, "x", None], dtype=object
    ),
    "floats with NaN": np.array([0.25, math.nan, -math.inf, 1e16, 3.0]),
    "two outputs per row": np.array([[1.0, math.nan], [2.0, 3.0], [0, 0], [1, 1], [5, 6]]),
}


@pytest.mark.parametrize("kind", PREDICTION_KINDS)
@pytest.mark.parametrize("with_probabilities", [True, False])
def test_columnar_batch_rows_read_back_as_the_per_row_path_stores_them(
    store: Store, kind: str, with_probabilities: bool
) -> None:
    def chunk(batch_id: str) -> BatchPredictions:
        return BatchPredictions(
            model_name="churn",
            model_version=3,
            batch_id=batch_id,
            row_offset=10,
            inputs=mixed_inputs(),
            predictions=PREDICTION_KINDS[kind],
            probabilities=np.linspace(0, 1, 10).reshape(5, 2) if with_probabilities else None,
            class_names=("0", "1") if with_probabilities else (),
            latency_ms=0.125,
            created_at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        )

    assert store.append_batch_predictions(chunk("columns")) == 5
    assert store.append_predictions(per_row_records(chunk("columns"), "rows")) == 5
    # The interface's own default, which backends override, must agree with both.
    assert Store.append_batch_predictions(store, chunk("default")) == 5
    columnar = store.query_predictions(batch_id="columns")
    per_row = store.query_predictions(batch_id="rows")
    by_default = store.query_predictions(batch_id="default")
    assert [record.model_copy(update={"batch_id": "rows"}) for record in columnar] == per_row
    assert [record.model_copy(update={"batch_id": "rows"}) for record in by_default] == per_row
    first, second, third = columnar[:3]
    assert [record.row_index for record in columnar] == [10, 11, 12, 13, 14]
    assert (first.model_version, first.source, first.request_id) == ("3", "batch", None)
    assert first.created_at == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert first.latency_ms == 0.125
    assert first.input_row == {
        "amount": 1.5,
        "count": 1,
        "vip": True,
        "città": "Zürich ☃",
        "maybe_count": 1,
        "maybe_flag": True,
        "narrow": float(np.float32(0.1)),
    }
    assert (second.input_row["amount"], second.input_row["città"]) == (None, None)
    assert (second.input_row["maybe_count"], second.input_row["maybe_flag"]) == (None, None)
    assert third.input_row["amount"] is None  # infinity: JSON has none, MongoDB gets null too
    assert third.input_row["count"] == 2**62
    assert third.input_row["narrow"] is None
    assert second.probabilities == ({"0": 2 / 9, "1": 3 / 9} if with_probabilities else None)


def test_all_double_batch_rows_read_back_as_the_per_row_path_stores_them(store: Store) -> None:
    """All-double inputs (the usual batch) take their own encoding in some backends: what
    reads back must not differ from the per-row path, edge values included."""
    edges = [0.0, -0.0, 1e308, -1e-308, 5e-324, 0.1, math.nan, math.inf, -math.inf, 1.23456789e8]
    rng = np.random.default_rng(7)
    matrix = rng.normal(scale=1e6, size=(64, len(edges)))
    matrix[0] = edges
    matrix[1] = edges[::-1]
    features = pd.DataFrame(matrix, columns=[f"f{index}" for index in range(len(edges))])

    def chunk(batch_id: str) -> BatchPredictions:
        return BatchPredictions(
            model_name="churn",
            model_version="1",
            batch_id=batch_id,
            row_offset=0,
            inputs=features,
            predictions=np.arange(len(features)),
            probabilities=probabilities,
            class_names=("no", "yes"),
            created_at=datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        )

    probabilities = rng.dirichlet([1.0, 1.0], size=len(features))
    assert store.append_batch_predictions(chunk("columns")) == len(features)
    assert store.append_predictions(per_row_records(chunk("columns"), "rows")) == len(features)
    columnar = store.query_predictions(batch_id="columns")
    per_row = store.query_predictions(batch_id="rows")
    assert [record.model_copy(update={"batch_id": "rows"}) for record in columnar] == per_row
    first = list(columnar[0].input_row.values())
    assert first[:6] == edges[:6] and first[9] == edges[9] and first[6] is None
    assert first[7:9] == [None, None] and columnar[1].input_row["f2"] is None
    assert math.copysign(1.0, first[1]) == -1.0  # -0.0 keeps its sign
    assert [list(record.input_row.values()) for record in columnar[2:]] == matrix[2:].tolist()
    assert [list(record.probabilities.values()) for record in columnar] == probabilities.tolist()


def test_columnar_batch_rows_are_idempotent(store: Store) -> None:
    features = pd.DataFrame({"x": np.arange(10, dtype=np.float64)})

    def chunk(start: int, stop: int) -> BatchPredictions:
        return BatchPredictions(
            model_name="churn",
            model_version="1",
            batch_id="batch-1",
            row_offset=start,
            inputs=features.iloc[start:stop],
            predictions=np.arange(start, stop),
        )

    assert store.append_batch_predictions(chunk(0, 5)) == 5
    assert store.append_batch_predictions(chunk(0, 5)) == 0  # a redelivered part
    assert store.append_batch_predictions(chunk(3, 8)) == 3
    assert store.append_predictions(per_row_records(chunk(6, 10), "batch-1")) == 2
    assert store.append_batch_predictions(chunk(0, 10)) == 0
    assert store.append_batch_predictions(chunk(10, 10)) == 0  # no rows
    stored = store.query_predictions(batch_id="batch-1")
    assert [(record.row_index, record.prediction) for record in stored] == [
        (index, index) for index in range(10)
    ]
    assert [record.input_row for record in stored] == [{"x": float(index)} for index in range(10)]


# -- every row its own values ----------------------------------------------------------------

#: Four rows that differ in every input, prediction and probability, so a backend that wrote
#: one row's values under another row's key reads back wrong.
DISTINCT_INPUTS = pd.DataFrame(
    {
        "age": np.array([31, 47, 58, 22], dtype=np.int64),
        "fare": [7.25, 71.2833, 8.05, 53.1],
        "plan": ["basic", "gold", "basic ✓", "silver"],
    }
)
DISTINCT_PREDICTIONS = np.array(["stay", "leave", "leave", "stay"], dtype=object)
DISTINCT_PROBABILITIES = np.array([[0.9, 0.1], [0.35, 0.65], [0.125, 0.875], [0.6, 0.4]])


def expected_rows() -> list[tuple[dict[str, object], object, dict[str, float]]]:
    """Each row's inputs, prediction and probabilities, written out value by value."""
    return [
        ({"age": 31, "fare": 7.25, "plan": "basic"}, "stay", {"stay": 0.9, "leave": 0.1}),
        ({"age": 47, "fare": 71.2833, "plan": "gold"}, "leave", {"stay": 0.35, "leave": 0.65}),
        ({"age": 58, "fare": 8.05, "plan": "basic ✓"}, "leave", {"stay": 0.125, "leave": 0.875}),
        ({"age": 22, "fare": 53.1, "plan": "silver"}, "stay", {"stay": 0.6, "leave": 0.4}),
    ]


def write_distinct_rows(store: Store, how: str, make_prediction: MakePrediction) -> str:
    """Writes the four rows as the predictor (online records) or the inferer (a columnar
    chunk) does; returns the request or batch id they are stored under."""
    if how == "online records":
        records = [
            make_prediction(
                source="online",
                request_id="request-distinct",
                row_index=index,
                input_row=inputs,
                prediction=prediction,
                probabilities=probabilities,
            )
            for index, (inputs, prediction, probabilities) in enumerate(expected_rows())
        ]
        assert store.append_predictions(records) == 4
        return "request-distinct"
    chunk = BatchPredictions(
        model_name="churn",
        model_version="1",
        batch_id="batch-distinct",
        row_offset=0,
        inputs=DISTINCT_INPUTS,
        predictions=DISTINCT_PREDICTIONS,
        probabilities=DISTINCT_PROBABILITIES,
        class_names=("stay", "leave"),
    )
    if how == "batch columns":
        assert store.append_batch_predictions(chunk) == 4
    else:
        assert store.append_predictions(chunk.records()) == 4
    return "batch-distinct"


@pytest.mark.parametrize("how", ["online records", "batch columns", "batch records"])
def test_every_row_reads_back_its_own_inputs_prediction_and_probabilities(
    store: Store, make_prediction: MakePrediction, how: str
) -> None:
    key = write_distinct_rows(store, how, make_prediction)
    filters = {"request_id": key} if how == "online records" else {"batch_id": key}
    stored = store.query_predictions(**filters)
    assert [record.row_index for record in stored] == [0, 1, 2, 3]
    assert [
        (record.input_row, record.prediction, record.probabilities) for record in stored
    ] == expected_rows()


# -- batches ---------------------------------------------------------------------------------


def test_float_only_inputs_read_back_as_the_per_row_path_stores_them(store: Store) -> None:
    """SQLite encodes a frame of float64 columns as one matrix: its text must be the rows'."""
    values = np.array(
        [
            [0.28876650599537753, math.nan, -0.0],
            [math.inf, -math.inf, 5e-324],
            [1e300, -1e-300, 3.0],
        ]
    )
    chunk = BatchPredictions(
        model_name="churn",
        model_version="1",
        batch_id="columns",
        row_offset=0,
        inputs=pd.DataFrame(values, columns=["a", "b", "c"]),
        predictions=np.array([0, 1, 0]),
    )
    assert store.append_batch_predictions(chunk) == 3
    assert store.append_predictions(per_row_records(chunk, "rows")) == 3
    columnar = store.query_predictions(batch_id="columns")
    assert [r.model_copy(update={"batch_id": "rows"}) for r in columnar] == (
        store.query_predictions(batch_id="rows")
    )
    assert columnar[0].input_row == {"a": 0.28876650599537753, "b": None, "c": -0.0}
    assert columnar[1].input_row == {"a": None, "b": None, "c": 5e-324}


def test_batch_create_get_and_idempotency(store: Store) -> None:
    batch = BatchRecord(batch_id="batch-1", model_name="churn", part_count=3, rows_total=30)
    created = store.create_batch(batch)
    assert created == (batch, True)
    assert store.get_batch("batch-1") == batch
    again = store.create_batch(BatchRecord(batch_id="batch-1", model_name="other", part_count=9))
    assert again == (batch, False)
    with pytest.raises(NotFoundError) as caught:
        store.get_batch("nope")
    assert str(caught.value) == "batch 'nope' not found"


def test_batch_parts_are_counted_once(store: Store) -> None:
    store.create_batch(BatchRecord(batch_id="batch-1", model_name="churn", part_count=3))
    first = store.mark_batch_part_done("batch-1", 1, rows=10)
    assert (first.status, first.parts_done, first.rows_done) == (BatchStatus.RUNNING, {1}, 10)
    redelivered = store.mark_batch_part_done("batch-1", 1, rows=10)
    assert redelivered == first
    store.mark_batch_part_done("batch-1", 0, rows=10)
    last = store.mark_batch_part_done("batch-1", 2, rows=5)
    assert (last.status, last.parts_done, last.rows_done) == (BatchStatus.SUCCEEDED, {0, 1, 2}, 25)
    assert store.get_batch("batch-1") == last
    with pytest.raises(InvalidRecordError) as caught:
        store.mark_batch_part_done("batch-1", 3, rows=1)
    assert caught.value.field == "part_index"
    with pytest.raises(NotFoundError):
        store.mark_batch_part_done("nope", 0, rows=1)


def test_update_and_list_batches(store: Store) -> None:
    for number in range(3):
        store.create_batch(
            BatchRecord(
                batch_id=f"b{number}", model_name="churn", part_count=2, created_at=at(number)
            )
        )
    failed = store.update_batch("b1", status=BatchStatus.FAILED, error="model not found")
    assert (failed.status, failed.error) == (BatchStatus.FAILED, "model not found")
    assert failed.updated_at >= failed.created_at
    assert store.mark_batch_part_done("b1", 0, rows=1).status is BatchStatus.FAILED
    assert [batch.batch_id for batch in store.list_batches()] == ["b2", "b1", "b0"]
    assert [batch.batch_id for batch in store.list_batches(status="failed")] == ["b1"]
    assert [batch.batch_id for batch in store.list_batches(limit=1)] == ["b2"]
    with pytest.raises(InvalidRecordError) as caught:
        store.update_batch("b0", batch_id="b9")
    assert caught.value.field == "batch_id"


# -- dead letters ----------------------------------------------------------------------------


def test_dead_letters_keep_their_bytes(store: Store) -> None:
    body = b"\x00\xff\x08not protobuf \xe2\x98\x83"
    older = DeadLetter(
        queue="mlp.pipelines",
        message_id="m-1",
        message_type="mlplatform.v1.SubmitPipeline",
        reason="DecodeError: truncated message",
        body=body,
        recorded_at=at(0),
    )
    newer = DeadLetter(queue="mlp.batches", reason="unknown model", recorded_at=at(1))
    store.record_dead_letter(older)
    store.record_dead_letter(newer)
    assert store.list_dead_letters() == [newer, older]
    assert store.list_dead_letters(queue="mlp.pipelines") == [older]
    assert store.list_dead_letters(limit=1) == [newer]


# -- model serving history -------------------------------------------------------------------


def test_serving_history_closes_the_previous_version(store: Store) -> None:
    first = store.record_serving("churn", "1", alias="production", started_at=at(0))
    assert first.ended_at is None
    restarted = store.record_serving("churn", 1, alias="production", started_at=at(5))
    assert restarted == first  # the same version still serving: one span, not two
    store.record_serving("churn", "7", alias="staging", started_at=at(6))
    store.record_serving("churn", "2", alias="production", started_at=at(10))
    store.record_serving("fraud", "1", alias="production", started_at=at(11))

    history = store.list_serving("churn")
    assert [(span.version, span.alias, span.started_at, span.ended_at) for span in history] == [
        ("2", "production", at(10), None),
        ("7", "staging", at(6), None),
        ("1", "production", at(0), at(10)),
    ]
    assert len(store.list_serving("churn", limit=1)) == 1
    assert store.list_serving("nobody") == []


# -- lifecycle -------------------------------------------------------------------------------


def test_closed_store_refuses_work(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError):
        store.list_runs()


# -- outcomes --------------------------------------------------------------------------------


def _online_and_batch_predictions(store: Store, make_prediction: MakePrediction) -> None:
    store.append_predictions(
        [
            make_prediction(source="online", request_id="req-1", row_index=row, prediction="stay")
            for row in range(2)
        ]
        + [make_prediction(source="online", request_id="req-v2", model_version="2")]
    )
    _append_batch_of_three(
        store,
        probabilities=np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]]),
        class_names=("stay", "leave"),
    )


def _append_batch_of_three(store: Store, **fields: Any) -> None:
    """Rows 0-2 of churn v1's batch-1, predicted stay, leave, leave; `fields` add to them."""
    store.append_batch_predictions(
        BatchPredictions(
            model_name="churn",
            model_version="1",
            batch_id="batch-1",
            row_offset=0,
            inputs=pd.DataFrame({"age": [30, 40, 50]}),
            predictions=np.array(["stay", "leave", "leave"], dtype=object),
            created_at=T0 + timedelta(seconds=5),
            **fields,
        )
    )


def test_outcomes_join_online_and_batch_predictions(
    store: Store, make_prediction: MakePrediction
) -> None:
    _online_and_batch_predictions(store, make_prediction)
    report = store.record_outcomes(
        [
            Outcome(kind="request", key="req-1", row_index=0, label="stay"),
            Outcome(kind="request", key="req-1", row_index=1, label="leave"),
            Outcome(kind="batch", key="batch-1", row_index=2, label="leave"),
        ]
    )
    assert report == OutcomeReport(matched=3, replaced=0, unknown=[], labelled=3)
    assert report.stored
    assert store.count_labelled("churn", "1") == 3
    assert store.count_labelled("churn", "2") == 0
    assert store.count_labelled("churn", "1", since=T0 + timedelta(seconds=1)) == 1
    pairs = store.labelled_predictions("churn", "1")
    assert sorted((pair.prediction, pair.label) for pair in pairs) == [
        ("leave", "leave"),
        ("stay", "leave"),
        ("stay", "stay"),
    ]
    batch_pair = next(pair for pair in pairs if pair.probabilities == {"stay": 0.2, "leave": 0.8})
    assert batch_pair.label == "leave"
    assert batch_pair.created_at == T0 + timedelta(seconds=5)
    assert [pair.created_at for pair in pairs] == sorted(
        (pair.created_at for pair in pairs), reverse=True
    )


def test_a_second_outcome_replaces_the_first_and_says_so(
    store: Store, make_prediction: MakePrediction
) -> None:
    _online_and_batch_predictions(store, make_prediction)
    store.record_outcomes([Outcome(kind="batch", key="batch-1", row_index=0, label="leave")])
    report = store.record_outcomes(
        [
            Outcome(kind="batch", key="batch-1", row_index=0, label="stay"),
            Outcome(kind="batch", key="batch-1", row_index=1, label="leave"),
        ]
    )
    assert (report.matched, report.replaced) == (2, 1)
    assert store.count_labelled("churn") == 2
    labels = sorted(pair.label for pair in store.labelled_predictions("churn"))
    assert labels == ["leave", "stay"]


def test_unknown_outcome_keys_are_reported_and_nothing_is_stored(
    store: Store, make_prediction: MakePrediction
) -> None:
    _online_and_batch_predictions(store, make_prediction)
    report = store.record_outcomes(
        [
            Outcome(kind="request", key="req-1", row_index=0, label="stay"),
            Outcome(kind="request", key="req-1", row_index=9, label="stay"),
            Outcome(kind="batch", key="req-1", row_index=0, label="stay"),
            Outcome(kind="request", key="batch-1", row_index=0, label=1),
        ]
    )
    assert report.matched == 1
    assert not report.stored
    assert [str(key) for key in report.unknown] == [
        "request_id='req-1' row=9",
        "batch_id='req-1' row=0",
        "request_id='batch-1' row=0",
    ]
    assert store.count_labelled("churn") == 0


def test_an_outcome_named_twice_in_one_call_is_refused(
    store: Store, make_prediction: MakePrediction
) -> None:
    _online_and_batch_predictions(store, make_prediction)
    twice = Outcome(kind="request", key="req-1", row_index=0, label="stay")
    with pytest.raises(DuplicateOutcomeError, match="request_id='req-1' row=0"):
        store.record_outcomes([twice, twice.model_copy(update={"label": "leave"})])
    assert store.count_labelled("churn") == 0


@pytest.mark.parametrize("label", [1, 2.5, True, "yes"])
def test_outcome_labels_keep_their_type(
    store: Store, make_prediction: MakePrediction, label: object
) -> None:
    _online_and_batch_predictions(store, make_prediction)
    store.record_outcomes([Outcome(kind="request", key="req-v2", row_index=0, label=label)])
    [pair] = store.labelled_predictions("churn", "2")
    assert pair.label == label
    assert type(pair.label) is type(label)


@pytest.mark.parametrize("label", [math.nan, None, [1], {"a": 1}])
def test_invalid_outcome_labels_are_refused(label: object) -> None:
    with pytest.raises(ValueError, match="label"):
        Outcome(kind="request", key="req-1", row_index=0, label=label)


# -- outcomes by prediction key ----------------------------------------------------------------


def _keyed_predictions(store: Store, make_prediction: MakePrediction) -> None:
    """Online rows keyed order-1 (churn v1) and order-2 (churn v1 and fraud); batch rows keyed
    order-3, order-1 (reused: churn's order-1 is also online) and none."""
    store.append_predictions(
        [
            make_prediction(source="online", request_id="req-1", prediction_key="order-1"),
            make_prediction(
                source="online", request_id="req-1", row_index=1, prediction_key="order-2"
            ),
            make_prediction(
                source="online", request_id="req-9", model_name="fraud", prediction_key="order-2"
            ),
        ]
    )
    _append_batch_of_three(store, prediction_keys=("order-3", "order-1", None))


def test_prediction_keys_read_back_with_their_predictions(
    store: Store, make_prediction: MakePrediction
) -> None:
    _keyed_predictions(store, make_prediction)
    online = store.query_predictions(request_id="req-1")
    assert [record.prediction_key for record in online] == ["order-1", "order-2"]
    batch = store.query_predictions(batch_id="batch-1")
    assert [record.prediction_key for record in batch] == ["order-3", "order-1", None]


def test_outcomes_by_prediction_key_label_online_and_batch_predictions(
    store: Store, make_prediction: MakePrediction
) -> None:
    _keyed_predictions(store, make_prediction)
    report = store.record_outcomes(
        [
            Outcome(kind="prediction_key", key="order-3", label="leave"),
            Outcome(kind="prediction_key", key="order-2", model_name="churn", label="stay"),
        ]
    )
    assert (report.matched, report.labelled, report.replaced, report.unknown) == (2, 2, 0, [])
    assert report.reused_keys == ()
    assert store.count_labelled("churn") == 2
    assert store.count_labelled("fraud") == 0  # order-2 of fraud: another model's prediction
    pairs = sorted((pair.prediction, pair.label) for pair in store.labelled_predictions("churn"))
    assert pairs == [("stay", "leave"), ("stay", "stay")]


def test_a_reused_prediction_key_labels_every_prediction_and_says_so(
    store: Store, make_prediction: MakePrediction
) -> None:
    _keyed_predictions(store, make_prediction)
    report = store.record_outcomes(
        [
            Outcome(kind="prediction_key", key="order-1", label="leave"),
            Outcome(kind="prediction_key", key="order-2", label="stay"),
        ]
    )
    assert (report.matched, report.labelled) == (2, 4)
    assert [str(key) for key in report.reused_keys] == [
        "prediction_key='order-1'",
        "prediction_key='order-2'",
    ]
    assert store.count_labelled("churn") == 3
    assert store.count_labelled("fraud") == 1


def test_an_outcome_by_key_replaces_one_by_row_and_says_so(
    store: Store, make_prediction: MakePrediction
) -> None:
    _keyed_predictions(store, make_prediction)
    store.record_outcomes([Outcome(kind="batch", key="batch-1", row_index=0, label="stay")])
    report = store.record_outcomes(
        [Outcome(kind="prediction_key", key="order-3", model_name="churn", label="leave")]
    )
    assert (report.matched, report.labelled, report.replaced) == (1, 1, 1)
    [pair] = store.labelled_predictions("churn")
    assert pair.label == "leave"


def test_unknown_prediction_keys_are_reported_and_nothing_is_stored(
    store: Store, make_prediction: MakePrediction
) -> None:
    _keyed_predictions(store, make_prediction)
    report = store.record_outcomes(
        [
            Outcome(kind="prediction_key", key="order-3", label="leave"),
            Outcome(kind="prediction_key", key="order-404", label="leave"),
            Outcome(kind="prediction_key", key="order-3", model_name="fraud", label="leave"),
        ]
    )
    assert report.matched == 1
    assert not report.stored
    assert [str(key) for key in report.unknown] == [
        "prediction_key='order-404'",
        "prediction_key='order-3' model='fraud'",
    ]
    assert store.count_labelled("churn") == 0


def test_two_keys_naming_one_prediction_in_one_call_are_refused(
    store: Store, make_prediction: MakePrediction
) -> None:
    _keyed_predictions(store, make_prediction)
    with pytest.raises(DuplicateOutcomeError, match="name the same prediction"):
        store.record_outcomes(
            [
                Outcome(kind="request", key="req-1", row_index=0, label="stay"),
                Outcome(kind="prediction_key", key="order-1", label="leave"),
            ]
        )
    assert store.count_labelled("churn") == 0


def test_outcome_fields_must_fit_their_kind_of_key() -> None:
    with pytest.raises(ValueError, match="row_index is not used with a prediction key"):
        Outcome(kind="prediction_key", key="order-1", row_index=0, label="stay")
    with pytest.raises(ValueError, match="row_index is required with request_id"):
        Outcome(kind="request", key="req-1", label="stay")
    with pytest.raises(ValueError, match="model_name is used with a prediction key only"):
        Outcome(kind="batch", key="batch-1", row_index=0, model_name="churn", label="stay")


def test_batch_prediction_keys_must_match_the_rows() -> None:
    with pytest.raises(InvalidRecordError, match="prediction_keys"):
        BatchPredictions(
            model_name="churn",
            model_version="1",
            batch_id="batch-1",
            row_offset=0,
            inputs=pd.DataFrame({"age": [30, 40]}),
            predictions=np.array([0, 1]),
            prediction_keys=("only-one",),
        )
